import { mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import { retryWithBackoff } from "./async/backoff.js";
import { sleep } from "./async/sleep.js";
import type { Backend, BackendFactory, BackendRegistration } from "./backend/backend.js";
import { findBackend } from "./backend/registry.js";
import { describeReconcileChange } from "./backend/reconcile-report.js";
import { POLL_RECONCILE_MS, POLL_RULES_RESYNC_MS, type DaemonOptions } from "./config/daemon-options.js";
import { selectExternalInterface } from "./config/interface-selection.js";
import { ignoredFieldsNote, parseNetworkConfig, primaryNetwork, type NetworkConfig } from "./config/network-config.js";
import { incompatibility } from "./config/config-change.js";
import { TrafficRules } from "./host/firewall/traffic-rules.js";
import { isWeftDevice, kernelEventMonitor } from "./kernel/kernel-events.js";
import { rulesetEventMonitor } from "./host/firewall/ruleset-events.js";
import { TriggeredPass } from "./async/triggered-pass.js";
import { deleteTun } from "./kernel/tun-routing.js";
import { allStoredFdNames, discardResumedDataPath, earlyResumeReport } from "./backend/userspace/early-resume.js";
import { assertNetAdmin } from "./host/privileges.js";
import { readSubnetEnv, previousIpv6Subnet, previousSubnet, subnetEnvFor, writeSubnetEnv } from "./host/subnet-env.js";
import { readLeaseRecord, writeLeaseRecord } from "./host/lease-record.js";
import { acquireLease, networkMoveRefusal } from "./lease/acquire.js";
import { NetworkChangedError, OutOfSubnetsError } from "./lease/errors.js";
import { formatLeaseValue } from "./lease/lease-value.js";
import type { OwnLeaseAltered, SharedVtepMac } from "./lease/peer-leases.js";
import { LeaseKeeper } from "./lease/renew.js";
import type { Lease, LeaseAttrs, PeerEvent } from "./lease/types.js";
import { PeerWatcher } from "./lease/watch.js";
import type { Ipv4Subnet } from "./net/ipv4.js";
import type { Ipv6Subnet } from "./net/ipv6.js";
import { describeSubnets, leaseSubnets, primarySubnet, type SubnetKeyParts } from "./lease/subnet-key.js";
import { NO_PUBLIC_IP, hostAddress } from "./lease/host-address.js";
import { startHttpServer, type Readiness, type RunningHttpServer } from "./observe/http-server.js";
import { createMetrics, type WeftMetrics } from "./observe/metrics.js";
import { buildEngineOf } from "./backend/build-engine.js";
import { timeAsyncCalls } from "./observe/call-timing.js";
import { startPeerProbing, type PeerProbing } from "./probe/peer-prober.js";
import { buildStatusModel } from "./probe/status-model.js";
import { probeUnderlayMtu } from "./probe/probe-targets.js";
import { EtcdStore } from "./store/etcd-store.js";
import { routeGrpcLogs } from "./store/grpc-logs.js";
import { formatDuration } from "./observe/format-duration.js";
import { errorMessage } from "./errors/error-message.js";
import { NO_SERVICE_NOTIFIER, type ServiceNotifier } from "./host/systemd/service-notifier.js";

const CONFIG_RETRY_MS = 1000;
const ACQUIRE_RETRY_FIRST_MS = 1000;
const STEP_RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/** The reason stop() aborts with: start-up steps end there, and run() turns it into a clean return. */
class StopRequested extends Error {
  constructor() {
    super("stop requested");
    this.name = "StopRequested";
  }
}

/** What the lease is for, fixed once the config is read and the backend registered. */
interface Network {
  config: NetworkConfig;
  attrs: LeaseAttrs;
  mtu: number;
}

/** Everything start() wires together for the network; built in one place once the backend is registered. */
interface Wiring {
  store: EtcdStore;
  network: Network;
  backend: Backend;
  rules: TrafficRules;
  keeper: LeaseKeeper;
  watcher: PeerWatcher;
}

export class Daemon {
  private readonly metrics: WeftMetrics = createMetrics();
  private http: RunningHttpServer | undefined;
  private probing: PeerProbing | undefined;
  /** What start-up has built so far: the whole Wiring once it got that far; stop() takes down what is there. */
  private built: Partial<Wiring> = {};
  private ownLease: Lease | undefined;
  /** Reconciles asked for while one runs: one more pass follows, never two at once. */
  private reconcile: { running: boolean; again: boolean } = { running: false, again: false };
  /** Aborted (with StopRequested) by stop(): every retry and back-off of start-up and re-acquire ends at once. */
  private readonly stopping = new AbortController();
  private startup: Promise<void> = Promise.resolve();
  private reacquiring: Promise<void> | undefined;
  private readonly ready = { lease: false, rules: false, subnetFile: false, backend: false };
  /** Since when the network config key is missing or unusable (etcd lost its data, deleted, replaced); undefined while it is fine. */
  private configProblem: { since: Date; what: string } | undefined;
  /** Since when the own lease is being re-acquired (deleted, expired, taken over); undefined while held. */
  private leaseProblem: { since: Date; what: string } | undefined;
  /** Resolved when the config is usable again; re-acquiring waits for it. */
  private configBack: { promise: Promise<void>; resolve: () => void } | undefined;
  private readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  constructor(
    private readonly options: DaemonOptions,
    private readonly logger: Logger,
    /** systemd's Type=notify protocol (READY=1 at the /readyz moment, STOPPING=1, STATUS=); a no-op without it. */
    private readonly notifier: ServiceNotifier = NO_SERVICE_NOTIFIER,
  ) {
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  /**
   * First SIGTERM/SIGINT stops gracefully (the lease stays for the restart), then exits 0; a second
   * exits at once. SIGHUP is logged and ignored (Node would exit on it): nothing is re-read.
   */
  handleSignals(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.stopRequested) {
        this.logger.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      this.logger.info({ signal }, "stopping; the lease is kept for the next start");
      // Exit once stopped: after close() the etcd client may still hold a watch-reconnect timer
      // (etcd3's back-off, up to 30 s during an outage) that would keep the process alive.
      void this.stop().then(() => process.exit(0));
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    process.on("SIGHUP", (signal: NodeJS.Signals) => {
      this.logger.info({ signal }, "SIGHUP: ignored (weft re-reads nothing; restart it to apply changed flags or /etc/default/weft)");
    });
  }

  /** Runs until stop(); rejects only on errors a restart cannot fix (bad flags, no privileges). */
  async run(): Promise<void> {
    this.startup = this.start();
    try {
      await this.startup;
    } catch (error) {
      if (!(error instanceof StopRequested)) throw error;
    }
    return this.stopped;
  }

  async stop(): Promise<void> {
    if (this.stopRequested) return this.stopped;
    this.notifier.stopping("stopping; the lease and kernel state are kept for the next start");
    this.stopping.abort(new StopRequested());
    // Let the step in flight finish (a back-off ends at once; each step checks the signal when it returns), then take down.
    await this.startup.catch(() => undefined);
    await this.reacquiring;
    const { keeper, watcher, backend, store } = this.built;
    await this.probing?.stop();
    keeper?.stop();
    await watcher?.stop().catch(() => undefined);
    await backend?.stop().catch((error: Error) => this.logger.warn({ err: error }, "stopping the backend failed"));
    await this.http?.close().catch(() => undefined);
    store?.close();
    this.notifier.close();
    this.logger.info("stopped");
    this.resolveStopped();
    return this.stopped;
  }

  private async start(): Promise<void> {
    const { options, logger } = this;
    this.logEarlyResume();
    if (options.healthz) {
      const status = () =>
        buildStatusModel({
          backend: this.built.network?.config.backend.type,
          ownLease: this.ownLease,
          peers: this.built.watcher?.current() ?? [],
          probing: this.probing,
          readiness: this.readiness(),
          registry: this.metrics.registry,
          etcdEndpoints: options.store.endpoints,
          etcdCheck: () => {
            const store = this.built.store;
            return store ? store.get(store.configKey) : Promise.reject(new Error("no etcd client yet"));
          },
        });
      this.http = await startHttpServer({ ...options.healthz, registry: this.metrics.registry, readiness: () => this.readiness(), status, logger });
    }
    if (options.ipMasq || options.forwardRules) assertNetAdmin("installing traffic rules (--ip-masq, --iptables-forward-rules)");
    routeGrpcLogs(logger);
    // `call` is EtcdStore's own wrapper around each request: the public methods are what is timed.
    const store = timeAsyncCalls(new EtcdStore(options.store), this.metrics.etcdRequestSeconds, ["call"]);
    this.built.store = store;
    this.metrics.trackReadiness(() => this.readiness().checks);
    this.watchReachability(store);
    store.observeNotices((notice) => logger[notice.level]({ endpoints: options.store.endpoints.join(",") }, notice.message));
    await mkdir(options.stateDir, { recursive: true });
    this.notifier.status(`reading the network config at ${store.configKey}`);
    const { config, factory } = await this.readNetworkConfig(store);
    const ignored = ignoredFieldsNote(config);
    if (ignored) logger.warn({ fields: config.ignoredFields }, ignored);
    // After the config, as flanneld: a dual-stack network needs the interface's IPv6 address too.
    const external = await selectExternalInterface(options.interfaceSelection, { ipv6: config.enableIPv6, ipv4: config.enableIPv4 });
    const v6 = external.addressV6 !== undefined ? `, IPv6 ${external.addressV6}, public IPv6 ${external.publicIPv6 ?? external.addressV6}` : "";
    logger.info(
      {
        iface: external.name,
        address: external.address,
        publicIP: external.publicIP,
        addressV6: external.addressV6,
        publicIPv6: external.publicIPv6,
        mtu: external.mtu,
        selectedBy: external.selectedBy,
      },
      `using interface ${external.name} (${external.address ?? "no IPv4"}), public IP ${external.publicIP ?? "none"}${v6}`,
    );
    if (!config.enableIPv6 && options.interfaceSelection.publicIPv6) {
      logger.warn({ publicIPv6: options.interfaceSelection.publicIPv6 }, "--public-ipv6 is unused: the network config does not enable IPv6 (EnableIPv6)");
    }
    if (factory.type !== "alloc") assertNetAdmin(`the ${factory.type} backend`);
    this.metrics.setBuildInfo({ backend: factory.type, engine: buildEngineOf(config) });
    const backend = factory.create({
      network: config,
      options: config.backend.options,
      external,
      logger: logger.child({ backend: factory.type }),
      metrics: this.metrics.registry,
      stateDir: options.stateDir,
      readvertise: (attrs) => this.readvertise(attrs),
      restarts: { holdMs: options.restartHoldMs, ...(this.notifier.fdStore ? { fdStore: this.notifier.fdStore } : {}) },
    });
    this.built.backend = backend;
    const registration = await backend.register();
    this.checkpoint();
    // wireguard chose its implementation in register(): the label says which one runs.
    this.metrics.setBuildInfo({ backend: factory.type, engine: buildEngineOf(config, backend.dataPathDetails?.()) });
    const network: Network = {
      config,
      mtu: registration.mtu,
      attrs: { publicIP: (config.ipv4 && external.publicIP) || NO_PUBLIC_IP, publicIPv6: config.enableIPv6 ? (external.publicIPv6 ?? null) : null, ...registration.attrs },
    };

    const wiring: Wiring = {
      store,
      network,
      backend,
      rules: new TrafficRules(logger, { fullyRandom: options.ipMasqFullyRandom }),
      keeper: new LeaseKeeper({
        store,
        logger,
        renewMarginMs: options.renewMarginMs,
        onRenewed: (renewed) => {
          this.ownLease = renewed;
          this.metrics.renewals.inc();
          this.metrics.trackLeaseExpiry(renewed.expiresAt);
        },
        onRenewFailed: () => {
          this.metrics.renewalFailures.inc();
        },
        onExpired: () => this.reacquire(wiring, "the lease expired"),
      }),
      watcher: new PeerWatcher({
        store,
        logger,
        ownLease: () => this.ownLease,
        ownPublicIP: hostAddress(network.attrs),
        network: config,
        onPeers: (events) => this.applyPeers(wiring, events),
        onOwnLeaseLost: (why) => this.reacquire(wiring, why),
        onOwnLeaseAltered: (altered) => void this.repairOwnLease(wiring, altered),
        onSharedVtepMac: (shared) => void this.renewVtepMac(wiring, shared),
        onConfig: (value) => this.noteConfig(wiring, value),
        onResync: (reason) => {
          if (reason !== "periodic") this.metrics.watchResyncs.inc({ reason });
        },
      }),
    };
    this.built = wiring;

    const lease = await this.acquireUntilDone(wiring, await this.readPreviousSubnets(), await this.readPreviousEtcdLease());
    wiring.keeper.track(lease);
    await this.takeLease(wiring, lease);

    await this.retryUntilStopped("list peers", () => wiring.watcher.start());
    // With the peer snapshot applied, clear what no lease backs now rather than at the first
    // periodic pass (an empty snapshot triggers no backend work of its own).
    await wiring.watcher.settled();
    this.checkpoint();
    await this.reconcileNow(wiring.backend);
    this.startPeriodicWork(wiring, external.name);
    if (options.peerProbeIntervalMs !== undefined) {
      this.probing = startPeerProbing({
        intervalMs: options.peerProbeIntervalMs,
        backend: config.backend,
        overlayMtu: network.mtu,
        underlayMtu: probeUnderlayMtu(config.backend, external.mtu),
        peers: () => wiring.watcher.current(),
        logger: logger.child({ component: "probe" }),
        registry: this.metrics.registry,
      });
    }
    logger.info({ subnet: lease.subnet?.toString(), ipv6Subnet: lease.ipv6Subnet?.toString(), backend: factory.type }, "weft is ready");
    this.notifier.ready(this.readyStatus(lease, factory.type));
  }

  private get stopRequested(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Throws StopRequested once stop() was called: start-up steps end there. */
  private checkpoint(): void {
    this.stopping.signal.throwIfAborted();
  }

  private readyStatus(lease: Lease, backend: string): string {
    return `ready: subnet ${describeSubnets(lease)}, backend ${backend}, ${this.built.watcher?.current().length ?? 0} peer(s)`;
  }

  /** Ready means "this host forwards"; etcd and config trouble do not stop that, so they are notes. */
  private readiness(): Readiness {
    const checks = { ...this.ready };
    const notes: Record<string, string> = {};
    const down = this.built.store?.reachability.current();
    if (down) notes.etcd = `${down.refused ? "refusing weft" : "unreachable"} since ${down.since.toISOString()} (${down.what}: ${down.lastError})`;
    if (this.configProblem) notes.networkConfig = `${this.configProblem.what} since ${this.configProblem.since.toISOString()}`;
    if (this.leaseProblem) notes.lease = `${this.leaseProblem.what} since ${this.leaseProblem.since.toISOString()}`;
    const details = this.built.backend?.dataPathDetails?.() ?? {};
    return {
      ready: Object.values(checks).every(Boolean),
      checks,
      ...(Object.keys(notes).length > 0 ? { notes } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    };
  }

  /** One line when etcd stops answering and one when it is back; every failure counts in weft_etcd_errors_total. */
  private watchReachability(store: EtcdStore): void {
    store.reachability.observe({
      onFailure: () => this.metrics.etcdErrors.inc(),
      onUnreachable: (down) =>
        this.logger.error(
          { endpoints: this.options.store.endpoints.join(","), what: down.what, since: down.since.toISOString() },
          `${down.refused ? "etcd refuses weft" : "etcd unreachable"} (${down.lastError}); forwarding continues with the known peers, the lease is kept and renewed once etcd answers`,
        ),
      onReachable: (downMs) => this.logger.info({ downMs }, `etcd reachable again after ${formatDuration(downMs)}`),
    });
  }

  /**
   * The config key as the peer watch sees it. Missing (etcd lost its data, or deleted) or
   * replaced by one that is not this network: said loudly, nothing torn down, leases are not
   * re-created under it. Back and compatible: re-acquiring (if waiting) goes on at once.
   */
  private noteConfig(wiring: Wiring, value: string | undefined): void {
    const { store } = wiring;
    const running = wiring.network.config;
    let problem: string | undefined;
    if (value === undefined) {
      problem = `missing at ${store.configKey}`;
    } else {
      try {
        const config = parseNetworkConfig(value);
        const difference = incompatibility(running, config);
        if (difference) problem = `at ${store.configKey} is for another network (${difference})`;
      } catch (error) {
        problem = `at ${store.configKey} is invalid (${errorMessage(error)})`;
      }
    }
    if (problem === undefined) {
      if (this.configProblem) {
        this.logger.info({ key: store.configKey }, `the network config at ${store.configKey} is back; re-creating the lease if it is gone`);
        this.configProblem = undefined;
        this.configBack?.resolve();
        this.configBack = undefined;
      }
      return;
    }
    const what = `the network config ${problem}`;
    if (this.configProblem?.what === what) return;
    this.configProblem = { since: this.configProblem?.since ?? new Date(), what };
    if (!this.configBack) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.configBack = { promise, resolve };
    }
    this.logger.error(
      { key: store.configKey, network: primaryNetwork(running).toString(), backend: running.backend.type },
      value === undefined
        ? `${what} (etcd lost its data, or it was deleted): forwarding continues with the known peers and the running config; ` +
            `this host re-creates its lease as soon as it is back ("weft config set")`
        : `${what}: refused, weft keeps running ${primaryNetwork(running)} with ${running.backend.type}; nothing is torn down. ` +
            "Restore the config; changing the Network needs every host stopped and every lease of the old one gone",
    );
  }

  /** Waits (abortably) until the network config is usable, saying so once. */
  private async waitForConfig(subnet: Ipv4Subnet | Ipv6Subnet | undefined): Promise<void> {
    const waiting = this.configBack;
    if (!waiting) return;
    this.logger.warn({ subnet: subnet?.toString() }, `waiting for the network config before re-creating the lease (${this.configProblem?.what ?? "?"})`);
    this.notifier.status(`waiting for the network config: ${this.configProblem?.what ?? "?"}`);
    await new Promise<void>((resolve, reject) => {
      const signal = this.stopping.signal;
      const onAbort = () => reject(signal.reason as Error);
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      void waiting.promise.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  /**
   * Our key holds what we did not write. Garbage or other attrs (a wrong VtepMAC cuts the host off):
   * rewritten at once with our value on our etcd lease. Re-put on another etcd lease with our
   * PublicIP: another host shares our --public-ip; said loudly, not fought over (no ping-pong).
   */
  private async repairOwnLease(wiring: Wiring, altered: OwnLeaseAltered): Promise<void> {
    const own = this.ownLease;
    if (this.stopRequested || this.reacquiring || !own || own.key !== altered.stored.key) return;
    const { key } = altered.stored;
    if (altered.kind === "foreign-etcd-lease") {
      this.logger.error({ key, etcdLease: altered.stored.leaseId, ownEtcdLease: own.etcdLeaseId, publicIP: own.attrs.publicIP }, `our lease ${key}: ${altered.problem} Give every host its own --public-ip`);
      return;
    }
    this.logger.warn({ key, kind: altered.kind }, `our lease ${key} was overwritten (${altered.problem}); rewriting it with our value`);
    try {
      const rewritten = await wiring.store.replaceIfUnchanged(key, formatLeaseValue(own.attrs), own.reservation ? undefined : own.etcdLeaseId, altered.stored.modRevision);
      if (rewritten) this.logger.info({ key }, `rewrote our lease ${key}`);
    } catch (error) {
      // The next listing (reconnect, periodic) finds it again and retries.
      this.logger.error({ err: error, key }, `rewriting our lease ${key} failed; retrying at the next listing`);
    }
  }

  /**
   * A peer advertises our VtepMAC and our key is the younger (a cloned state dir, and we started
   * later): a new MAC from the backend, re-advertised in our key on our etcd lease. If the key
   * changed meanwhile, the rewrite waits for the next look at it (repairOwnLease: it differs from ours).
   */
  private async renewVtepMac(wiring: Wiring, shared: SharedVtepMac): Promise<void> {
    const own = this.ownLease;
    if (this.stopRequested || this.reacquiring || !own || !wiring.backend.renewVtepMac) return;
    try {
      const attrs: LeaseAttrs = { ...wiring.network.attrs, ...(await wiring.backend.renewVtepMac()) };
      const written = await this.rewriteOwnLease(wiring, own, attrs, shared.ownModRevision);
      this.logger.warn(
        { key: own.key, peer: shared.peer.key, value: formatLeaseValue(attrs), written },
        `re-advertised our lease ${own.key} with a new VtepMAC (${shared.mac} is ${shared.peer.key}'s too)${written ? "" : "; the key changed meanwhile, rewritten at the next look at it"}`,
      );
    } catch (error) {
      this.logger.error({ err: error, key: own.key }, `taking a new VtepMAC failed; vxlan to ${shared.peer.key} stays broken until one of the two hosts gets another MAC`);
    }
  }

  /**
   * Our lease re-put with new attrs (kept for renewals, repairs and the next acquisition), on
   * the mod revision we know (none: the key is absent) or, if it was written since, once more on
   * what is there now.
   */
  private async rewriteOwnLease(wiring: Pick<Wiring, "network" | "keeper" | "store">, own: Lease, attrs: LeaseAttrs, knownModRevision: string | undefined): Promise<boolean> {
    wiring.network.attrs = attrs;
    const lease: Lease = { ...own, attrs };
    this.ownLease = lease;
    wiring.keeper.track(lease);
    const replace = (modRevision: string) => wiring.store.replaceIfUnchanged(own.key, formatLeaseValue(attrs), own.reservation ? undefined : own.etcdLeaseId, modRevision);
    // Mod revision "0": only if the key is absent.
    if (await replace(knownModRevision ?? "0")) return true;
    // Written since we looked (a renewal does not write; a repair may have): once more on what is there now.
    const current = (await wiring.store.list(own.key)).keys.find((stored) => stored.key === own.key);
    return current ? replace(current.modRevision) : false;
  }

  /**
   * The backend's advertised attrs changed on its own (a rotated WireGuard key): our lease says
   * so now; before we hold one (or while re-acquiring) the next acquisition takes them.
   */
  private async readvertise(backendAttrs: BackendRegistration["attrs"]): Promise<boolean> {
    const wiring = this.built;
    if (!wiring.network) return false;
    const attrs: LeaseAttrs = { ...wiring.network.attrs, ...backendAttrs };
    wiring.network.attrs = attrs;
    const { network, store, keeper } = wiring;
    const own = this.ownLease;
    if (this.stopRequested || this.reacquiring || !own || !store || !keeper) return false;
    try {
      const written = await this.rewriteOwnLease({ network, store, keeper }, own, attrs, undefined);
      if (!written) this.logger.warn({ key: own.key }, `our lease ${own.key} changed while it was re-advertised; it is rewritten when the next listing finds it differs`);
      return written;
    } catch (error) {
      this.logger.error({ err: error, key: own.key }, `re-advertising our lease ${own.key} failed; it is rewritten when the next listing finds it differs`);
      return false;
    }
  }

  /**
   * The config is written by an operator: until it exists and validates (backend options
   * included), say which key and field is wrong, once in a while, and keep waiting.
   */
  private async readNetworkConfig(store: EtcdStore): Promise<{ config: NetworkConfig; factory: BackendFactory }> {
    let lastProblem = "";
    for (let attempt = 0; ; attempt++) {
      this.checkpoint();
      try {
        const stored = await store.get(store.configKey);
        if (stored) {
          const config = parseNetworkConfig(stored.value);
          const factory = findBackend(config.backend.type);
          factory.validateOptions(config.backend.options);
          // Before anything is built for it: a config of another Network while hosts run in ours is waited out (re-read each second).
          await this.refuseNetworkMove(store, config);
          return { config, factory };
        }
        const waiting = `waiting for the network config at ${store.configKey} ("weft config set")`;
        if (lastProblem !== waiting) this.notifier.status(waiting);
        lastProblem = waiting;
        if (attempt % 30 === 0) {
          this.logger.warn(
            { key: store.configKey },
            `no network config at ${store.configKey} (written with the etcd v3 API?); write one with "weft config set", retrying`,
          );
        }
      } catch (error) {
        // Say it when the problem changes (someone edited the config), and every 30 s otherwise.
        const problem = errorMessage(error);
        if (problem !== lastProblem || attempt % 30 === 0) {
          // The problem stays in msg: it is the operator's config (or etcd's answer) and the one thing to read.
          this.logger.error({ key: store.configKey }, `cannot use the network config: ${problem}; retrying`);
        }
        if (problem !== lastProblem) this.notifier.status(`cannot use the network config at ${store.configKey}, retrying: ${problem}`);
        lastProblem = problem;
      }
      await sleep(CONFIG_RETRY_MS, this.stopping.signal);
    }
  }

  /** Throws NetworkChangedError when our subnet file's subnets lie outside `config`'s Network and other hosts still lease outside it. */
  private async refuseNetworkMove(store: EtcdStore, config: NetworkConfig): Promise<void> {
    const previous = await this.readPreviousSubnets();
    if (!previous) return;
    const refusal = networkMoveRefusal(config, (await store.list(store.subnetsPrefix)).keys, [previous]);
    if (refusal instanceof NetworkChangedError) throw refusal;
  }

  private async readPreviousEtcdLease(): Promise<string | undefined> {
    try {
      return (await readLeaseRecord(this.options.stateDir))?.etcdLeaseId;
    } catch (error) {
      this.logger.warn({ err: error, stateDir: this.options.stateDir }, "ignoring the lease record in the state dir");
      return undefined;
    }
  }

  /** FLANNEL_SUBNET and FLANNEL_IPV6_SUBNET of the subnet file left by the last run (flanneld reads both). */
  private async readPreviousSubnets(): Promise<SubnetKeyParts | undefined> {
    try {
      const env = await readSubnetEnv(this.options.subnetFile);
      // An IPv6-only network's file has FLANNEL_IPV6_SUBNET alone.
      return env && leaseSubnets(previousSubnet(env), previousIpv6Subnet(env));
    } catch (error) {
      this.logger.warn({ err: error, path: this.options.subnetFile }, "ignoring the previous subnet file");
      return undefined;
    }
  }

  /** Acquires, retrying with back-off: etcd outages and a full network are waited out, not fatal. */
  private async acquireUntilDone(wiring: Wiring, previous: SubnetKeyParts | undefined, previousEtcdLeaseId?: string): Promise<Lease> {
    const { network } = wiring;
    return retryWithBackoff(
      async () => {
        const result = await acquireLease({
          store: wiring.store,
          config: network.config,
          attrs: network.attrs,
          previousSubnet: previous?.subnet,
          previousIpv6Subnet: previous?.ipv6Subnet,
          previousEtcdLeaseId,
          ttlSeconds: this.options.leaseTtlSeconds,
          logger: this.logger,
          signal: this.stopping.signal,
        });
        this.metrics.leaseAcquisitions.inc({ result: result.how });
        this.metrics.freeSubnets.set(result.freeSubnets);
        const { lease } = result;
        this.logger.info(
          {
            subnet: lease.subnet?.toString(),
            ipv6Subnet: lease.ipv6Subnet?.toString(),
            key: lease.key,
            how: result.how,
            expiresAt: lease.expiresAt?.toISOString() ?? "never (reservation)",
          },
          `leased ${describeSubnets(lease)}`,
        );
        this.ownLease = result.lease;
        this.ready.lease = true;
        this.metrics.trackLeaseExpiry(result.lease.reservation ? "reservation" : result.lease.expiresAt);
        if (result.lease.etcdLeaseId) {
          await writeLeaseRecord(this.options.stateDir, { key: result.lease.key, etcdLeaseId: result.lease.etcdLeaseId }).catch((error: Error) =>
            this.logger.warn({ err: error }, "cannot record the lease in the state dir; a restart after a reboot may not recognise it"),
          );
        }
        return result.lease;
      },
      {
        initialMs: ACQUIRE_RETRY_FIRST_MS,
        maxMs: RETRY_MAX_MS,
        signal: this.stopping.signal,
        // A full network: retry as soon as a lease is deleted, not at the end of a back-off of up to 30 s.
        wakeEarly: (error, signal) => (error instanceof OutOfSubnetsError ? this.subnetFreed(wiring.store, signal) : undefined),
        onFailure: (error, retryInMs) => {
          const full = error instanceof OutOfSubnetsError;
          this.metrics.leaseAcquisitions.inc({ result: full ? "out-of-subnets" : "error" });
          if (full) this.metrics.freeSubnets.set(0);
          this.logger.error({ err: error, retryInMs }, "cannot lease a subnet; retrying");
          this.notifier.status(`cannot lease a subnet, retrying: ${errorMessage(error)}`);
        },
      },
    );
  }

  /** Resolves at the first deletion under the subnets prefix (a lease freed or expired); never when `signal` ends first. */
  private async subnetFreed(store: EtcdStore, signal: AbortSignal): Promise<void> {
    const listing = await store.list(store.subnetsPrefix);
    if (signal.aborted) return new Promise<never>(() => undefined);
    let freed!: () => void;
    const deleted = new Promise<void>((resolve) => (freed = resolve));
    const cancel = await store.watchPrefix(store.subnetsPrefix, (BigInt(listing.revision) + 1n).toString(), {
      onEvents: (events) => {
        if (events.some((event) => event.type === "delete")) freed();
      },
      onError: () => undefined, // the back-off's own wait still ends the wait
    });
    const ended = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    if (signal.aborted) await cancel();
    else {
      await Promise.race([deleted, ended]);
      await cancel();
    }
    if (signal.aborted) return new Promise<never>(() => undefined);
    this.logger.info("a lease was freed; trying again now");
  }

  /**
   * Everything that follows from holding `lease`, in flannel's order: traffic rules, subnet.env
   * (so docker never sees a subnet whose rules are missing), then the backend. Each step is
   * retried until it works; readiness shows which one is pending.
   */
  private async takeLease(wiring: Wiring, lease: Lease): Promise<void> {
    const { options } = this;
    const { network, rules, backend } = wiring;
    this.ready.rules = this.ready.subnetFile = this.ready.backend = false;
    await this.retryUntilStopped("install traffic rules", () =>
      rules.apply({
        network: network.config.ipv4?.network,
        ownSubnet: lease.subnet,
        ipMasq: options.ipMasq,
        forwardRules: options.forwardRules,
        ipv6: network.config.ipv6 && lease.ipv6Subnet && { network: network.config.ipv6.network, ownSubnet: lease.ipv6Subnet },
      }),
    );
    this.ready.rules = true;
    await this.retryUntilStopped("write the subnet file", () =>
      writeSubnetEnv(options.subnetFile, subnetEnvFor(network.config, lease, { mtu: network.mtu, ipMasq: options.ipMasq })),
    );
    this.ready.subnetFile = true;
    this.logger.info({ path: options.subnetFile, mtu: network.mtu }, "wrote the subnet file");
    await this.retryUntilStopped("activate the backend", () => backend.activate(lease));
    this.ready.backend = true;
    await this.discardUnusedResume();
  }

  /** A data path resumed at start that the backend did not take (it runs another backend now): closed, its device deleted. */
  private async discardUnusedResume(): Promise<void> {
    const discarded = discardResumedDataPath();
    if (!discarded) return;
    this.notifier.fdStore?.remove(allStoredFdNames());
    this.logger.info({ device: discarded.engine.tunName, backend: discarded.snapshot.backend }, "the data path resumed at start belongs to another backend: removed its device");
    await deleteTun(discarded.engine.tunName, discarded.snapshot.engine.netns);
  }

  /** Says what the start-up resume (cli.ts, before anything else) did. */
  private logEarlyResume(): void {
    const report = earlyResumeReport();
    if (report.resumed) {
      this.logger.info(report.resumed, `data path ${report.resumed.how} ${report.resumed.readyAfterMs} ms after the process started, before etcd: forwarding with ${report.resumed.peers} saved peer(s)`);
    }
    for (const problem of report.problems) this.logger.warn({ problem }, `data path not resumed at start: ${problem}`);
  }

  private reacquire(wiring: Wiring, why: string): void {
    if (this.stopRequested || this.reacquiring) return;
    const lost = this.ownLease;
    this.logger.warn({ subnet: lost && primarySubnet(lost).toString() }, `${why}; acquiring a lease again (same subnet preferred), the data path keeps running`);
    this.notifier.status(`${why}; acquiring a lease again, the data path keeps running`);
    // Readiness stays: the host still forwards with its subnet while the key is re-created; a note says why.
    this.leaseProblem = { since: new Date(), what: `being re-acquired (${why})` };
    this.reacquiring = (async () => {
      await this.waitForConfig(lost && primarySubnet(lost));
      if (lost?.etcdLeaseId) await wiring.store.revokeLease(lost.etcdLeaseId).catch(() => undefined);
      const lease = await this.acquireUntilDone(wiring, lost, lost?.etcdLeaseId);
      // Renewal first: whatever happens next, the new lease must not lapse.
      wiring.keeper.track(lease);
      if (lost && lost.key !== lease.key) {
        // Deliberate: the old subnet is someone else's now; sharing it would leave one of us unreachable for good.
        const from = describeSubnets(lost);
        const to = describeSubnets(lease);
        this.logger.error(
          { from, to },
          `the subnet changed (${why}): moved from ${from} to ${to}; docker0 must be reconfigured from the subnet file (restart docker), containers on the old subnet are cut off until then`,
        );
        await this.takeLease(wiring, lease);
      }
      this.leaseProblem = undefined;
      this.notifier.status(this.readyStatus(lease, wiring.network.config.backend.type));
    })()
      .catch((error: Error) => {
        if (!(error instanceof StopRequested)) this.logger.error({ err: error }, "re-acquiring the lease failed");
      })
      .finally(() => (this.reacquiring = undefined));
  }

  private async applyPeers(wiring: Wiring, events: PeerEvent[]): Promise<void> {
    if (this.stopRequested) return;
    this.metrics.peers.set(wiring.watcher.current().length);
    for (const event of events) {
      const { lease } = event;
      this.logger.info(
        { subnet: lease.subnet?.toString(), ipv6Subnet: lease.ipv6Subnet?.toString(), publicIP: lease.attrs.publicIP, publicIPv6: lease.attrs.publicIPv6 ?? undefined, backendType: lease.attrs.backendType },
        `peer ${event.kind}`,
      );
    }
    await wiring.backend.applyPeers(events);
  }

  /**
   * Repairs run on events, each periodic pass is the backstop for a missed one (issue 10: an idle
   * host runs no commands). Kernel events (kernel-events.ts) trigger a reconcile, nftables events
   * (ruleset-events.ts) a traffic-rules check; while a monitor is down, or the rules are partly in
   * iptables-legacy where nft sees no changes, the passes poll at the intervals from before events.
   */
  private startPeriodicWork(wiring: Wiring, underlay: string): void {
    // stop() came during the last start-up step: its abort is over, so nothing here would be stopped.
    if (this.stopRequested) return;
    const { options, logger } = this;
    const config = wiring.network.config;
    // Events this close together make one pass: a peer's neighbour, FDB entry and route; a whole nft transaction.
    const debounceMs = 150;
    const reconciling = new TriggeredPass({
      what: "reconciling kernel state",
      run: () => this.reconcileNow(wiring.backend),
      debounceMs,
      backstopMs: options.reconcileIntervalMs,
      pollMs: Math.min(options.reconcileIntervalMs, POLL_RECONCILE_MS),
      logger,
    });
    const checkingRules = new TriggeredPass({
      what: "checking traffic rules",
      run: async () => {
        const { repaired } = await wiring.rules.verify();
        if (repaired) logger.warn("traffic rules were missing or changed; re-installed them");
        checkingRules.setWatched(rulesMonitor.running && !(await wiring.rules.partlyOutsideNftables()));
        return repaired;
      },
      debounceMs,
      backstopMs: options.rulesResyncMs,
      pollMs: Math.min(options.rulesResyncMs, POLL_RULES_RESYNC_MS),
      logger,
    });
    // Running again after a gap: a pass catches up with whatever changed unseen meanwhile.
    const watchedWhileRunning = (pass: TriggeredPass) => (running: boolean) => {
      pass.setWatched(running);
      if (running) pass.trigger();
    };
    const rulesMonitor = rulesetEventMonitor({ onChange: () => checkingRules.trigger(), onRunning: watchedWhileRunning(checkingRules), logger });
    const monitors = [rulesMonitor];
    if (config.backend.type === "alloc") reconciling.setWatched(true); // no kernel state: the backstop pass only
    else {
      const scope = { underlay, networks: [config.ipv4?.network, config.ipv6?.network].flatMap((network) => (network ? [network] : [])) };
      monitors.push(
        kernelEventMonitor({
          scope,
          onEvent: (event, line) => {
            // A device of weft's deleted is worth a line; the rest is routine (and the pass logs any repair).
            if (event.object === "link" && event.deleted && event.device !== undefined && isWeftDevice(event.device)) {
              logger.warn({ device: event.device }, `link ${event.device} was deleted; reconciling now`);
            } else logger.debug({ event: line }, "kernel event; reconciling");
            reconciling.trigger();
          },
          onRunning: watchedWhileRunning(reconciling),
          logger,
        }),
      );
    }
    const passes = [reconciling, checkingRules];
    for (const work of [...passes, ...monitors]) work.start();
    this.stopping.signal.addEventListener("abort", () => {
      for (const work of [...passes, ...monitors]) work.stop();
    });
  }

  /** One reconcile (more while asked again meanwhile); true when it changed kernel state. */
  private async reconcileNow(backend: Backend): Promise<boolean> {
    if (this.reconcile.running) {
      this.reconcile.again = true;
      return false;
    }
    this.reconcile.running = true;
    let changed = false;
    try {
      do {
        this.reconcile.again = false;
        try {
          const report = await backend.reconcile({ dryRun: false });
          if (report.changes.length > 0) {
            changed = true;
            this.logger.warn({ changes: report.changes.map(describeReconcileChange) }, "repaired kernel state");
          }
        } catch (error) {
          this.logger.error({ err: error }, "reconciling kernel state failed");
        }
      } while (this.reconcile.again && !this.stopRequested);
    } finally {
      this.reconcile.running = false;
    }
    return changed;
  }

  /** Retries `work` with back-off until it succeeds; StopRequested once stop() was called. */
  private async retryUntilStopped<T>(what: string, work: () => Promise<T>): Promise<T> {
    return retryWithBackoff(work, {
      initialMs: STEP_RETRY_FIRST_MS,
      maxMs: RETRY_MAX_MS,
      signal: this.stopping.signal,
      onFailure: (error, retryInMs) => {
        this.logger.error({ err: error, retryInMs }, `${what} failed; retrying`);
        this.notifier.status(`${what} failed, retrying: ${errorMessage(error)}`);
      },
    });
  }
}
