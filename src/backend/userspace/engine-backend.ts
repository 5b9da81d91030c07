import type { Backend, BackendContext, BackendRegistration } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { PeerTable, type PeerChange, type Refusal } from "../peer-table.js";
import { programmingMetrics, recordPeerCounts, type ProgrammingMetrics } from "../programming-metrics.js";
import { describeReconcileChange, describeOwnedObject, type ReconcileReport, type TunChange, type TunObject } from "../reconcile-report.js";
import { SerialQueue } from "../../async/serial-queue.js";
import { formatIpv4 } from "../../net/ipv4.js";
import { formatIpv6, type Ipv6Subnet } from "../../net/ipv6.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { sameSubnets } from "../../lease/subnet-key.js";
import { externalIpv4, ipv4NetworkOf, ownIpv4Subnet } from "../ipv4-half.js";
import { exportEngineCounters } from "../../engine/engine-metrics.js";
import { engineFdList, openEngine, type Engine, type EngineFds, type EngineOptions, type PeerRoute } from "../../engine/engine.js";
import { closeFds, parkFds } from "../../engine/handover/fd-handover.js";
import { errorMessage } from "../../errors/error-message.js";
import { addressTun, deleteTun, readTunRouting, readTxQueueLength, setTxQueueLength, type TunIpv6Routing } from "../../kernel/tun-routing.js";
import { writeSnapshot, type SnapshotEngineOptions } from "./datapath-snapshot.js";
import { claimResumedDataPath, discardResumedDataPath, storedFdEntries } from "./early-resume.js";

/** The TUN's queue while no process reads it (a hand-over): 100 s of a 100 pps stream. */
const HANDOVER_TX_QUEUE_LENGTH = 10_000;
/** What the kernel gives a new TUN. */
const DEFAULT_TUN_TX_QUEUE_LENGTH = 500;
/** After a resume, when the queue is put back: the engine drains it in milliseconds. */
const QUEUE_RESTORE_DELAY_MS = 2000;

/**
 * A backend whose data path is the userspace engine (udp, userspace vxlan). The TUN device
 * is addressed like flannel0 (own subnet address /32, the whole Network routed into it) and
 * every usable peer lease becomes an engine route. Peer bookkeeping (own subnet, own PublicIP,
 * backend type, refusals) is the PeerTable's.
 *
 * Restarts (spec.handover, under a daemon: context.restarts; docs/dataplane.md "Restarts"): the
 * TUN persists, so like a kernel backend's device it outlives the daemon (`weft cleanup` removes
 * it); the engine's options and peers are saved in the state directory; its fds are kept in
 * systemd's fd store, or parked by stop() in a holder process, for the next daemon, which resumes
 * forwarding on them before it talks to etcd (early-resume.ts) and hands the engine to this
 * class, which keeps it if nothing changed.
 */

export interface EngineBackendSpec {
  /** What register() reports. */
  registration: BackendRegistration;
  /** Everything the engine needs except what comes from the lease, the external interface and the namespace. */
  engine: Omit<EngineOptions, "bindAddress" | "icmpSource" | "netns" | "bindAddressV6" | "icmpSourceV6">;
  /**
   * The data path carries IPv6 too (dual-stack userspace vxlan): the engine opens an IPv6 socket
   * on the external interface's IPv6 address, the TUN gets the own IPv6 subnet address and the
   * IPv6 Network route, and peer routes may carry an IPv6 half.
   */
  forwardsIpv6?: boolean;
  /**
   * The engine route for a peer lease that passed the PeerTable's checks (already of this
   * backend's type, not ours), or why the lease cannot be served.
   */
  peerRoute(lease: Lease): PeerRoute | Refusal;
  /**
   * Restarts drop nothing: persistent TUN, saved data path, fds parked at stop. Not for
   * wireguard (its sessions live in the process).
   */
  handover?: boolean;
}

/** Where the data path lives: the daemon's own namespace unless a test or the lab says otherwise. */
export interface EnginePlacement {
  /** Network namespace (name under /run/netns) for the TUN, the socket and the `ip` commands. */
  netns?: string;
}

export class EngineBackend implements Backend, LeaseSetLoader {
  private spec: EngineBackendSpec | undefined;
  private engine: Engine | undefined;
  private ownLease: Lease | undefined;
  private readonly peers: PeerTable<PeerRoute>;
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private unexport: (() => void) | undefined;
  /** Peer key → the IPv6 subnet programmed for it: a re-accepted peer may have lost or changed its IPv6 half. */
  private readonly programmedV6 = new Map<string, Ipv6Subnet>();
  /** The options the engine was opened with (what the snapshot records). */
  private engineOptions: SnapshotEngineOptions | undefined;
  /**
   * Routes a resumed engine brought from the snapshot that no lease has confirmed yet; the
   * first reconcile after the lease set is in removes what is still here.
   */
  private readonly unconfirmedPeers = new Map<string, PeerRoute>();
  /** Snapshot writes, one at a time, the newest state last. */
  private readonly snapshotWrites = new SerialQueue();
  private snapshotProblem = false;
  /** FDNAMEs of the fds this engine keeps in systemd's fd store (empty: not stored). */
  private storedFdNames: string[] = [];

  constructor(
    readonly type: string,
    protected readonly context: BackendContext,
    private readonly prepare: () => Promise<EngineBackendSpec>,
    private readonly placement: EnginePlacement = {},
  ) {
    this.metrics = programmingMetrics(context.metrics);
    this.peers = new PeerTable<PeerRoute>({
      backendType: type,
      ownPublicIP: context.external.publicIP,
      logger: context.logger,
      classify: (lease) => this.requireSpec().peerRoute(lease),
    });
  }

  /** The device name once the engine is open (the kernel may have filled in a template). */
  get tunName(): string | undefined {
    return this.engine?.tunName;
  }

  /** The running engine, for tests and diagnostics. */
  get runningEngine(): Engine | undefined {
    return this.engine;
  }

  async register(): Promise<BackendRegistration> {
    return this.queue.run(async () => {
      this.spec = await this.prepare();
      return this.spec.registration;
    });
  }

  async activate(ownLease: Lease): Promise<void> {
    await this.queue.run(async () => {
      const spec = this.requireSpec();
      const previous = this.ownLease;
      this.ownLease = ownLease;
      // The ICMP sources are the own subnet addresses, fixed when the engine opens.
      if (this.engine && previous && !sameSubnets(previous, ownLease)) await this.reopenOnSameFds(spec, ownLease, { newTun: false });
      const changes = this.peers.setOwnLease(ownLease);
      this.updateMetrics();
      if (!this.engine) await this.openEngine(spec, ownLease);
      await this.addressDevice(ownLease);
      this.program(changes); // every served peer is in it: a re-decided peer counts as accepted
      this.saveSnapshot();
      this.context.logger.info(
        { device: this.engine?.tunName, subnet: ownLease.subnet?.toString(), features: this.engine?.features },
        "userspace data path up",
      );
    });
  }

  /**
   * Prepares the spec again (something it reads changed: a new VtepMAC in the state dir) and,
   * when running, re-opens the engine with it on the same TUN and sockets (its options are fixed
   * at open; the TUN's addresses and the peers stay). Returns the new registration's attrs.
   */
  protected async prepareAgain(): Promise<BackendRegistration["attrs"]> {
    return this.queue.run(async () => {
      this.spec = await this.prepare();
      const own = this.ownLease;
      if (this.engine && own) {
        await this.reopenOnSameFds(this.spec, own, { newTun: false });
        this.setEveryPeer();
        await this.addressDevice(own);
        this.saveSnapshot();
      }
      return this.spec.registration.attrs;
    });
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      this.requireSpec();
      this.program(this.peers.apply(events));
      this.updateMetrics();
      this.saveSnapshot();
    });
  }

  async loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    await this.queue.run(async () => {
      this.ownLease = ownLease;
      if (!this.spec) this.spec = await this.prepare();
      this.program(this.peers.setOwnLease(ownLease));
      this.program(this.peers.apply(peers.map((lease) => ({ kind: "added", lease }))));
      this.updateMetrics();
    });
  }

  refusedPeers(): string[] {
    return this.peers.refusedReasons();
  }

  async reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(async () => {
      const own = this.ownLease;
      const spec = this.requireSpec();
      if (!own) return { desired: [], actual: [], changes: [] };
      const device = this.engine?.tunName ?? spec.engine.tunName;
      const desired = this.desiredObjects(device, own);
      const state = await readTunRouting(device, this.placement.netns);
      const actual: TunObject[] = state.exists
        ? [
            { kind: "tun-device", device },
            ...state.addresses.map((address): TunObject => ({ kind: "tun-address", address, device })),
            ...state.routes.map((destination): TunObject => ({ kind: "tun-route", destination, device })),
          ]
        : [];
      // Peers live in the engine, which this process owns: they cannot drift from the lease set,
      // except for routes a resumed engine brought from the snapshot that no lease confirmed.
      if (this.engine) actual.push(...desired.filter((object) => object.kind === "engine-peer"));
      if (this.engine) actual.push(...[...this.unconfirmedPeers.values()].map((peer): TunObject => ({ kind: "engine-peer", peer })));
      const changes = tunChanges(desired, actual);
      if (!options.dryRun && changes.length > 0 && !this.engine) {
        // An earlier repair could not open the engine again: try once more (throws if it still cannot).
        await this.openEngine(spec, own);
        this.setEveryPeer();
        await this.addressDevice(own);
        return { desired, actual, changes };
      }
      if (!options.dryRun && changes.length > 0 && this.engine) {
        this.metrics.repairs.inc({ backend: this.type }, changes.length);
        this.context.logger.warn({ changes: changes.map(describeReconcileChange) }, "reconcile: repairing the TUN device's address and route");
        if (!state.exists) {
          // Someone deleted the device under us: a TUN cannot come back on the same fd.
          await this.reopenOnSameFds(spec, own, { newTun: true });
          this.setEveryPeer();
        }
        this.dropUnconfirmedPeers();
        await this.addressDevice(own);
      }
      return { desired, actual, changes };
    });
  }

  /**
   * With handover: saves the data path for the next start and leaves the persistent device; the
   * fds stay in systemd's fd store, or are parked in a holder for --restart-hold. Otherwise (or
   * if parking fails) the engine is closed.
   */
  async stop(): Promise<void> {
    await this.queue.run(async () => {
      const engine = this.engine;
      if (!engine || !this.engineOptions?.persist) {
        this.closeEngine();
        return;
      }
      const normalQueue = await this.lengthenQueueForHandover(engine.tunName);
      this.saveSnapshot(normalQueue);
      await this.snapshotWrites.run(async () => undefined);
      const holdMs = this.context.restarts?.holdMs ?? 0;
      if (this.storedFdNames.length > 0 || holdMs <= 0) {
        this.closeEngine();
        if (this.storedFdNames.length > 0) {
          this.context.logger.info({ device: engine.tunName }, "data path kept in systemd's fd store for the next start: arriving packets wait in their queues");
        }
        return;
      }
      this.unexport?.();
      this.unexport = undefined;
      this.engine = undefined;
      const fds = engineFdList(engine.detach());
      try {
        const parked = await parkFds(this.context.stateDir, fds, holdMs);
        this.context.logger.info(
          { device: engine.tunName, holderPid: parked.pid, socket: parked.socketPath, holdMs },
          "data path parked for the next start: the TUN and sockets stay open, arriving packets wait in their queues",
        );
      } catch (error) {
        this.context.logger.warn({ err: error, device: engine.tunName }, "cannot park the data path; the TUN stays, packets are dropped until the next start");
      } finally {
        closeFds(fds);
      }
    });
  }

  private desiredObjects(device: string, own: Lease): TunObject[] {
    const v6 = this.tunIpv6(own);
    return [
      { kind: "tun-device", device },
      { kind: "tun-address", address: `${formatIpv4(ownIpv4Subnet(own).network)}/32`, device },
      { kind: "tun-route", destination: ipv4NetworkOf(this.context.network, this.type).toString(), device },
      ...(v6
        ? [
            { kind: "tun-address", address: `${formatIpv6(v6.ownSubnet.network)}/128`, device } as const,
            { kind: "tun-route", destination: v6.network.toString(), device } as const,
          ]
        : []),
      ...[...this.peers.peers()].map((peer): TunObject => ({ kind: "engine-peer", peer })),
    ];
  }

  /** The TUN's IPv6 address and route, when this data path carries IPv6 and the own lease has an IPv6 subnet. */
  private tunIpv6(own: Lease): TunIpv6Routing | undefined {
    const network = this.context.network.ipv6?.network;
    if (!this.spec?.forwardsIpv6 || !network || !own.ipv6Subnet) return undefined;
    return { ownSubnet: own.ipv6Subnet, network };
  }

  /** Makes the engine follow the table; without an engine (before activate, doctor) nothing to do. */
  private program(changes: readonly PeerChange<PeerRoute>[]): void {
    for (const change of changes) {
      const previousV6 = this.programmedV6.get(change.key);
      this.unconfirmedPeers.delete(change.peer.subnet.toString());
      if (change.kind === "accepted") {
        if (previousV6 && !(change.peer.ipv6 && previousV6.equals(change.peer.ipv6.subnet))) this.engine?.removePeerV6(previousV6);
        this.engine?.setPeer(change.peer);
        if (change.peer.ipv6) this.programmedV6.set(change.key, change.peer.ipv6.subnet);
        else this.programmedV6.delete(change.key);
      } else {
        this.engine?.removePeer(change.peer.subnet);
        if (previousV6) this.engine?.removePeerV6(previousV6);
        this.programmedV6.delete(change.key);
      }
    }
  }

  private updateMetrics(): void {
    recordPeerCounts(this.metrics, this.type, this.peers);
  }

  /** Opens the engine: the one resumed at start if it matches, on `adopt`'s fds if given, else new. */
  private async openEngine(spec: EngineBackendSpec, own: Lease, adopt?: EngineFds): Promise<void> {
    const v6 = spec.forwardsIpv6 === true;
    const handover = spec.handover === true && this.context.restarts !== undefined;
    const options: SnapshotEngineOptions = {
      ...spec.engine,
      netns: this.placement.netns,
      bindAddress: externalIpv4(this.context.external, this.type).address,
      icmpSource: formatIpv4(ownIpv4Subnet(own).network),
      ...(v6 ? { bindAddressV6: this.context.external.addressV6 } : {}),
      ...(v6 && own.ipv6Subnet ? { icmpSourceV6: formatIpv6(own.ipv6Subnet.network) } : {}),
      ...(handover ? { persist: true } : {}),
    };
    const resumed = handover && !adopt ? claimResumedDataPath(this.type, options) : undefined;
    if (adopt) {
      this.engine = openEngine({ ...options, adopt });
    } else if (resumed) {
      this.engine = resumed.engine;
      this.restoreQueueLength(resumed.engine, resumed.snapshot.txQueueLength);
      for (const peer of resumed.snapshot.peers) this.unconfirmedPeers.set(peer.subnet.toString(), peer);
      this.context.logger.info(
        { device: resumed.engine.tunName, how: resumed.how, peers: resumed.snapshot.peers.length },
        "kept the data path resumed at start (same options); its saved peers are checked against etcd's leases",
      );
    } else {
      await this.discardResumed();
      this.engine = await this.openFresh(options);
    }
    this.engineOptions = options;
    if (handover) this.storeFds(this.engine);
    const engine = this.engine;
    this.unexport = exportEngineCounters(this.context.metrics, () => (engine.closed ? undefined : engine.counters()));
  }

  /**
   * Opens the engine again on the sockets it has — with the options of a new own subnet (the TUN
   * kept too), or with a new TUN (the device was deleted under us) — instead of closing and
   * binding again: under systemd the unit's fd store holds a copy of every socket, so the port
   * stays taken and a new bind fails with EADDRINUSE (seen in the Vagrant hosts).
   */
  private async reopenOnSameFds(spec: EngineBackendSpec, own: Lease, how: { newTun: boolean }): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    this.unexport?.();
    this.unexport = undefined;
    this.engine = undefined;
    if (engine.mode === "wireguard") {
      engine.close(); // sessions live in the process: nothing to hand over; its socket is not stored either
      await this.openEngine(spec, own);
      return;
    }
    const fds = engine.detach();
    if (how.newTun) closeFds(fds.tun);
    const adopt = { tun: how.newTun ? [] : fds.tun, udp: fds.udp, udp6: fds.udp6 };
    try {
      await this.openEngine(spec, own, adopt);
    } catch (error) {
      closeFds(engineFdList(adopt));
      throw error;
    }
  }

  /** A resumed engine this backend cannot use (options changed): closed, its persistent device deleted. */
  private async discardResumed(): Promise<void> {
    const discarded = discardResumedDataPath();
    if (!discarded) return;
    this.context.logger.info({ device: discarded.engine.tunName }, "the data path resumed at start does not match the config and interface now: rebuilt");
    await deleteTun(discarded.engine.tunName, discarded.snapshot.engine.netns);
  }

  /** A persistent device left with other queues or offloads cannot be attached to: deleted, then created again. */
  private async openFresh(options: SnapshotEngineOptions): Promise<Engine> {
    try {
      return openEngine(options);
    } catch (error) {
      if (!options.persist || !/exists with other queues/.test(errorMessage(error))) throw error;
      this.context.logger.warn({ device: options.tunName }, `${errorMessage(error)}: deleting the device left by an earlier start`);
      await deleteTun(options.tunName, options.netns);
      return openEngine(options);
    }
  }

  /**
   * Under systemd: the engine's fds go into the unit's fd store (replacing those of an earlier
   * engine), where they outlive this process, a crash included. Failing to store them costs only
   * the hitless restart: said once, forwarding goes on.
   */
  private storeFds(engine: Engine): void {
    const fdStore = this.context.restarts?.fdStore;
    if (!fdStore) return;
    try {
      fdStore.remove(this.storedFdNames);
      const entries = storedFdEntries(engine.fds());
      fdStore.store(entries);
      this.storedFdNames = entries.map((entry) => entry.name);
    } catch (error) {
      this.storedFdNames = [];
      this.context.logger.warn({ err: error }, "cannot keep the data path in systemd's fd store (FileDescriptorStoreMax= in the unit?): a restart will drop packets");
    }
  }

  /** A new engine learns every served peer. */
  private setEveryPeer(): void {
    for (const route of this.peers.peers()) this.engine?.setPeer(route);
  }

  /** Routes from the snapshot that the lease set did not confirm: removed from the engine. */
  private dropUnconfirmedPeers(): void {
    for (const peer of this.unconfirmedPeers.values()) {
      this.engine?.removePeer(peer.subnet);
      if (peer.ipv6) this.engine?.removePeerV6(peer.ipv6.subnet);
    }
    this.unconfirmedPeers.clear();
  }

  /**
   * Between this process and the next nobody reads the TUN: what arrives waits in its queue,
   * 500 packets by default — 5 s of a 100 pps stream, less than a slow start takes (seen: 28 s
   * in a software-emulated VM; 1011 packets dropped at the TUN). Lengthened for the hand-over;
   * the next engine puts the length back once it has drained the queue (restoreQueueLength).
   * Returns the length to put back, undefined if it could not be changed (said once; the
   * hand-over goes on with the short queue).
   */
  private async lengthenQueueForHandover(device: string): Promise<number | undefined> {
    try {
      const current = await readTxQueueLength(device, this.placement.netns);
      // An earlier hand-over's length never put back (that process died early): back to the default then.
      const normal = current === HANDOVER_TX_QUEUE_LENGTH ? DEFAULT_TUN_TX_QUEUE_LENGTH : current;
      await setTxQueueLength(device, HANDOVER_TX_QUEUE_LENGTH, this.placement.netns);
      return normal;
    } catch (error) {
      this.context.logger.warn({ err: error, device }, "cannot lengthen the TUN's queue for the hand-over: packets beyond its length are dropped until the next start");
      return undefined;
    }
  }

  /** A resumed engine's device gets its queue length back, once the engine has drained what waited. */
  private restoreQueueLength(engine: Engine, length: number | undefined): void {
    if (length === undefined) return;
    setTimeout(() => {
      void this.queue.run(async () => {
        if (this.engine !== engine) return; // stopped or reopened meanwhile
        await setTxQueueLength(engine.tunName, length, this.placement.netns).catch((error: Error) =>
          this.context.logger.warn({ err: error, device: engine.tunName, length }, "cannot put the TUN's queue length back after the hand-over"),
        );
      });
    }, QUEUE_RESTORE_DELAY_MS).unref();
  }

  /** Records the options and peers for the next start (queued; a failure is said once, forwarding goes on). */
  private saveSnapshot(txQueueLength?: number): void {
    const options = this.engineOptions;
    if (!options?.persist || !this.engine) return;
    const snapshot = {
      backend: this.type, engine: options, device: this.engine.tunName, peers: [...this.peers.peers()],
      ...(txQueueLength !== undefined ? { txQueueLength } : {}),
    };
    void this.snapshotWrites
      .run(() => writeSnapshot(this.context.stateDir, snapshot))
      .then(() => (this.snapshotProblem = false))
      .catch((error: Error) => {
        if (this.snapshotProblem) return;
        this.snapshotProblem = true;
        this.context.logger.warn({ err: error }, "cannot save the data path for the next start; a restart will wait for etcd");
      });
  }

  private closeEngine(): void {
    this.unexport?.();
    this.unexport = undefined;
    this.engine?.close();
    this.engine = undefined;
  }

  private async addressDevice(own: Lease): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    await addressTun(engine.tunName, ownIpv4Subnet(own), ipv4NetworkOf(this.context.network, this.type), this.placement.netns, this.tunIpv6(own));
  }

  private requireSpec(): EngineBackendSpec {
    if (!this.spec) throw new Error(`${this.type} backend: register() must run before activate/applyPeers/reconcile`);
    return this.spec;
  }
}

/**
 * The changes that make the TUN state the desired one: everything missing is added; of what is
 * there, only the device's addresses and routes are ever removed (the device and the engine's
 * peers are this process's own).
 */
export function tunChanges(desired: readonly TunObject[], actual: readonly TunObject[]): TunChange[] {
  const actualLines = new Set(actual.map(describeOwnedObject));
  const desiredLines = new Set(desired.map(describeOwnedObject));
  const removable = (object: TunObject) => object.kind === "tun-address" || object.kind === "tun-route";
  return [
    ...desired.filter((object) => !actualLines.has(describeOwnedObject(object))).map((object): TunChange => ({ action: "add", object })),
    ...actual.filter((object) => removable(object) && !desiredLines.has(describeOwnedObject(object))).map((object): TunChange => ({ action: "remove", object })),
  ];
}
