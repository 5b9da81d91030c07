import type { Logger } from "pino";
import { Backoff } from "../async/backoff.js";
import { sleep } from "../async/sleep.js";
import type { WatchEvent } from "../store/records.js";
import type { LeaseStore } from "./lease-store.js";
import { PeerSettling } from "./peer-settling.js";
import { PeerLeases, type OwnLeaseAltered, type OwnLeaseRef, type PeerLeasesUpdate, type SharedVtepMac } from "./peer-leases.js";
import type { NetworkConfig } from "../config/network-config.js";
import { warnMalformed } from "./stored-lease.js";
import type { Lease, PeerEvent } from "./types.js";
import { hostAddress } from "./host-address.js";

export interface PeerWatcherOptions {
  store: LeaseStore;
  logger: Logger;
  /** The own lease (key, and what we wrote); its events are never peers. */
  ownLease: () => OwnLeaseRef | undefined;
  /**
   * Our PublicIP (in an IPv6-only network our PublicIPv6, see host-address.ts): a lease carrying it is ours (a reservation in another range, or the key a
   * re-acquire is just creating) and is never a peer, so no route to our own subnet appears.
   */
  ownPublicIP?: string;
  /** The running network config: a lease outside its Network is never a peer (logged once per key). */
  network?: NetworkConfig;
  /** Batches of peer changes, delivered one at a time (the next waits for the previous). */
  onPeers: (events: PeerEvent[]) => Promise<void>;
  /**
   * The own key was deleted (by hand, or expired), or another host's PublicIP was written into
   * it: the daemon re-acquires. `why` is for the log.
   */
  onOwnLeaseLost: (why: string) => void;
  /** The own key holds what we did not write (garbage, another VtepMAC, another etcd lease). */
  onOwnLeaseAltered?: (altered: OwnLeaseAltered) => void;
  /**
   * A peer advertises our VtepMAC and our key is the younger (written later): this host should
   * take a new MAC and re-advertise. Called once per peer key and MAC; always logged.
   */
  onSharedVtepMac?: (shared: SharedVtepMac) => void;
  /**
   * The network config key (store.configKey) as last seen, on every change of it: its value, or
   * undefined when it is gone (deleted, or etcd lost its data). While it is gone after having
   * been there, peers are kept: removals are held until it is back.
   */
  onConfig?: (value: string | undefined) => void;
  onResync?: (reason: "compacted" | "error" | "periodic" | "reconnected") => void;
  /** Full list-and-diff at this interval as a safety net (default 5 min). */
  resyncIntervalMs?: number;
  /**
   * A peer's change or removal reaches onPeers only after holding this long, and not at all
   * when undone meanwhile (see PeerSettling); new peers at once. Default 500 ms; 0: at once.
   */
  settleMs?: number;
}

const DEFAULT_SETTLE_MS = 500;

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;

type ResyncReason = "start" | "compacted" | "error" | "periodic" | "reconnected";

/**
 * Learns the other hosts' leases and the network config: list the network prefix (config and
 * subnets at one revision), then watch from revision + 1, handing every event of
 * every response to the peer table (`PeerLeases`, which computes the diffs). When the watch
 * breaks (compaction, errors) it backs off, lists again and lets the table diff against what it
 * knew, so nothing is missed and no error turns into a hot loop (flannel-compat §2.1–2.3). This class
 * only owns the stream, the back-off, the generation of the current watch and the delivery order.
 */
export class PeerWatcher {
  private readonly table: PeerLeases;
  private cancelWatch: (() => Promise<void>) | undefined;
  private delivery: Promise<void> = Promise.resolve();
  private readonly backoff = new Backoff(BACKOFF_START_MS, BACKOFF_MAX_MS);
  private readonly stopping = new AbortController();
  /** Ends the wait of a scheduled re-list when a newer one replaces it. */
  private pendingRestart: AbortController | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Bumped by every resync: events and errors of an older watch are ignored. */
  private generation = 0;
  private readonly reportedOurIP = new Set<string>();
  private readonly reportedSharedMac = new Set<string>();
  /** "<key> <problem>" of outside-the-Network keys already logged: once each, again when the problem changes. */
  private readonly reportedSkipped = new Set<string>();
  /** The config value last seen; undefined before the first listing. */
  private config: { value: string | undefined } | undefined;
  private configSeen = false;
  private readonly networkPrefix: string;
  private readonly settling = new PeerSettling();
  private settleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PeerWatcherOptions) {
    this.table = new PeerLeases(options.ownPublicIP, options.network);
    const { configKey, subnetsPrefix } = options.store;
    this.networkPrefix = configKey.slice(0, configKey.lastIndexOf("/") + 1);
    if (!subnetsPrefix.startsWith(this.networkPrefix)) throw new Error(`${subnetsPrefix} is not under ${this.networkPrefix}, the parent of ${configKey}`);
  }

  /** Lists and starts watching; rejects only if the first listing fails. */
  async start(): Promise<void> {
    await this.resync("start");
    const interval = this.options.resyncIntervalMs ?? 300_000;
    this.resyncTimer = setInterval(() => void this.restart("periodic"), interval);
    this.resyncTimer.unref();
  }

  /** The peers known right now. */
  current(): Lease[] {
    return this.table.current();
  }

  /** Resolves when every batch handed out so far has been applied. */
  async settled(): Promise<void> {
    await this.delivery;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    await this.cancelWatch?.();
    this.cancelWatch = undefined;
    await this.delivery;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async resync(reason: ResyncReason): Promise<void> {
    const { store, logger } = this.options;
    const generation = ++this.generation;
    await this.cancelWatch?.();
    this.cancelWatch = undefined;
    const listing = await store.list(this.networkPrefix);
    if (this.stopped || generation !== this.generation) return;
    if (reason !== "start") this.options.onResync?.(reason);
    this.noteConfig(listing.keys.find((stored) => stored.key === store.configKey)?.value);
    const subnets = listing.keys.filter((stored) => stored.key.startsWith(store.subnetsPrefix));
    const update = this.table.reset(subnets, this.options.ownLease(), this.policy());
    this.report(update);
    if (reason !== "start" && update.changes.length > 0) logger.info({ reason, changes: update.changes.length }, "peer list resynchronised");
    // The own key may have vanished or changed hands while the watch was down (at start it is being created).
    if (reason !== "start") this.reportOwnLease(update);
    this.deliver(update.changes);
    const next = (BigInt(listing.revision) + 1n).toString();
    const cancel = await store.watchPrefix(this.networkPrefix, next, {
      onEvents: (watchEvents) => {
        if (generation === this.generation) this.handleEvents(watchEvents);
      },
      onError: (error, compacted) => {
        if (generation === this.generation) this.handleWatchError(error, compacted);
      },
      // A resumed watch shows nothing of an etcd that came back empty (its revisions restart
      // below ours): list again, so a lost own key or config is seen at once.
      onReconnected: () => {
        if (generation === this.generation && !this.stopped) void this.restart("reconnected");
      },
    });
    // A newer resync (or stop) started while this watch was being created: it is not ours to keep.
    if (this.stopped || generation !== this.generation) {
      await cancel();
      return;
    }
    this.cancelWatch = cancel;
    this.backoff.reset();
  }

  private handleEvents(watchEvents: WatchEvent[]): void {
    const { configKey, subnetsPrefix } = this.options.store;
    for (const event of watchEvents) {
      if (event.key === configKey) this.noteConfig(event.type === "delete" ? undefined : event.value);
    }
    const subnets = watchEvents.filter((event) => event.key.startsWith(subnetsPrefix));
    if (subnets.length === 0) return;
    const update = this.table.apply(subnets, this.options.ownLease(), this.policy());
    this.report(update);
    this.reportOwnLease(update);
    this.deliver(update.changes);
  }

  /** Removals are held while the config is gone after having been there (etcd lost its data, or a prefix delete). */
  private policy(): { holdRemovals: boolean } {
    return { holdRemovals: this.configSeen && this.config?.value === undefined };
  }

  private noteConfig(value: string | undefined): void {
    if (this.config && this.config.value === value) return;
    const wasThere = this.configSeen;
    this.config = { value };
    if (value !== undefined) this.configSeen = true;
    if (value === undefined && wasThere) {
      this.options.logger.warn(
        { key: this.options.store.configKey, peers: this.table.current().length },
        `the network config ${this.options.store.configKey} is gone: keeping the ${this.table.current().length} known peer(s) until it is back`,
      );
    }
    this.options.onConfig?.(value);
  }

  /** Logs what the table skipped: malformed keys each time, our-PublicIP keys once each. */
  private report(update: PeerLeasesUpdate): void {
    for (const malformed of update.malformed) warnMalformed(this.options.logger, malformed);
    for (const key of update.carryingOurIP) {
      if (this.reportedOurIP.has(key)) continue;
      this.reportedOurIP.add(key);
      this.options.logger.info({ key }, "a lease with our PublicIP is not a peer (ours, or a host sharing our address)");
    }
    for (const { key, problem } of update.overwritten) {
      this.options.logger.warn({ key }, `peer lease ${key} was overwritten (${problem}): skipped, the peer kept as its holder last wrote it until the holder rewrites it or the key goes`);
    }
    for (const { key, problem } of update.outsideNetwork) {
      this.reportOnce(`${key} ${problem}`, () => this.options.logger.warn({ key }, `lease ${key} is not of the running network (${problem}): skipped, nothing is routed there`));
    }
    const own = this.options.ownLease();
    for (const shared of update.sharedVtepMac) {
      const { mac, peer, younger } = shared;
      if (this.reportedSharedMac.has(`${peer.key} ${mac}`)) continue;
      this.reportedSharedMac.add(`${peer.key} ${mac}`);
      const action =
        younger === "us"
          ? "our key is the younger (written later): taking a new MAC"
          : younger === "peer"
            ? "its key is the younger (written later): it takes a new MAC"
            : "on one of them stop weft, delete the *.vtep-mac file in its --state-dir and start it again for a new MAC";
      this.options.logger.error(
        { key: peer.key, peerPublicIP: hostAddress(peer.attrs) ?? peer.attrs.publicIP, ownKey: own?.key, ownPublicIP: this.options.ownPublicIP, vtepMAC: mac, younger },
        `peer ${hostAddress(peer.attrs) ?? peer.attrs.publicIP} (${peer.key}) advertises our VtepMAC ${mac} (we are ${this.options.ownPublicIP ?? "?"}, ${own?.key ?? "?"}): ` +
          `two hosts share one weft state dir (a cloned VM image?); vxlan between them cannot work; ${action}`,
      );
      if (younger === "us") this.options.onSharedVtepMac?.(shared);
    }
  }

  private reportOnce(what: string, log: () => void): void {
    if (this.reportedSkipped.has(what)) return;
    this.reportedSkipped.add(what);
    log();
  }

  private reportOwnLease(update: PeerLeasesUpdate): void {
    for (const why of update.ownLeaseLost) this.options.onOwnLeaseLost(why);
    for (const altered of update.ownLeaseAltered) this.options.onOwnLeaseAltered?.(altered);
  }

  private handleWatchError(error: Error, compacted: boolean): void {
    if (this.stopped) return;
    this.options.logger.warn({ err: error, compacted }, "peer watch interrupted; listing again");
    void this.restart(compacted ? "compacted" : "error");
  }

  /**
   * Lists again after a back-off; keeps backing off (100 ms doubling to 5 s) while etcd fails.
   * A newer restart replaces a pending one; stop() ends the wait.
   */
  private async restart(reason: Exclude<ResyncReason, "start">): Promise<void> {
    if (this.stopped) return;
    this.pendingRestart?.abort();
    const pending = new AbortController();
    this.pendingRestart = pending;
    // Compaction is not a failure: list again at once.
    const delay = reason === "error" ? this.backoff.next() : 0;
    const signal = AbortSignal.any([this.stopping.signal, pending.signal]);
    await sleep(delay, signal);
    if (signal.aborted) return;
    this.pendingRestart = undefined;
    await this.resync(reason).catch((error: Error) => {
      if (this.stopped) return;
      this.options.logger.warn({ err: error, retryInMs: this.backoff.peek() }, "listing peers failed; retrying");
      void this.restart("error");
    });
  }

  private deliver(changes: PeerEvent[]): void {
    const settleMs = this.options.settleMs ?? DEFAULT_SETTLE_MS;
    if (settleMs === 0) return this.handOver(changes);
    const { now, waiting } = this.settling.offer(changes);
    this.handOver(now);
    if (waiting && !this.settleTimer && !this.stopped) {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined;
        if (!this.stopped) this.handOver(this.settling.flush());
      }, settleMs);
      this.settleTimer.unref();
    }
  }

  private handOver(events: PeerEvent[]): void {
    if (events.length === 0) return;
    this.delivery = this.delivery.then(() =>
      this.options.onPeers(events).catch((error: Error) => {
        this.options.logger.error({ err: error, changes: events.length }, `applying ${events.length} peer change(s) failed`);
      }),
    );
  }
}
