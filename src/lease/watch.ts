import type { Logger } from "pino";
import { Backoff } from "../async/backoff.js";
import { sleep } from "../async/sleep.js";
import type { WatchEvent } from "../store/records.js";
import type { LeaseStore } from "./lease-store.js";
import { PeerLeases, type PeerLeasesUpdate } from "./peer-leases.js";
import { warnMalformed } from "./stored-lease.js";
import type { Lease, PeerEvent } from "./types.js";

export interface PeerWatcherOptions {
  store: LeaseStore;
  logger: Logger;
  /** The own lease key; its events are never peers. */
  ownKey: () => string | undefined;
  /**
   * Our PublicIP: a lease carrying it is ours (a reservation in another range, or the key a
   * re-acquire is just creating) and is never a peer, so no route to our own subnet appears.
   */
  ownPublicIP?: string;
  /** Batches of peer changes, delivered one at a time (the next waits for the previous). */
  onPeers: (events: PeerEvent[]) => Promise<void>;
  /**
   * The own key was deleted (by hand, or expired), or another host's PublicIP was written into
   * it: the daemon re-acquires. `why` is for the log.
   */
  onOwnLeaseLost: (why: string) => void;
  onResync?: (reason: "compacted" | "error" | "periodic") => void;
  /** Full list-and-diff at this interval as a safety net (default 5 min). */
  resyncIntervalMs?: number;
}

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;

type ResyncReason = "start" | "compacted" | "error" | "periodic";

/**
 * Learns the other hosts' leases: list, then watch from revision + 1, handing every event of
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

  constructor(private readonly options: PeerWatcherOptions) {
    this.table = new PeerLeases(options.ownPublicIP);
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
    const listing = await store.list(store.subnetsPrefix);
    if (this.stopped || generation !== this.generation) return;
    if (reason !== "start") this.options.onResync?.(reason);
    const update = this.table.reset(listing.keys, this.options.ownKey());
    this.report(update);
    if (reason !== "start" && update.changes.length > 0) logger.info({ reason, changes: update.changes.length }, "peer list resynchronised");
    // The own key may have vanished while the watch was down (at start it is being created).
    if (reason !== "start") this.reportOwnLeaseLost(update);
    this.deliver(update.changes);
    const next = (BigInt(listing.revision) + 1n).toString();
    const cancel = await store.watchPrefix(store.subnetsPrefix, next, {
      onEvents: (watchEvents) => {
        if (generation === this.generation) this.handleEvents(watchEvents);
      },
      onError: (error, compacted) => {
        if (generation === this.generation) this.handleWatchError(error, compacted);
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
    const update = this.table.apply(watchEvents, this.options.ownKey());
    this.report(update);
    this.reportOwnLeaseLost(update);
    this.deliver(update.changes);
  }

  /** Logs what the table skipped: malformed keys each time, our-PublicIP keys once each. */
  private report(update: PeerLeasesUpdate): void {
    for (const malformed of update.malformed) warnMalformed(this.options.logger, malformed);
    for (const key of update.carryingOurIP) {
      if (this.reportedOurIP.has(key)) continue;
      this.reportedOurIP.add(key);
      this.options.logger.info({ key }, "a lease with our PublicIP is not a peer (ours, or a host sharing our address)");
    }
  }

  private reportOwnLeaseLost(update: PeerLeasesUpdate): void {
    for (const why of update.ownLeaseLost) this.options.onOwnLeaseLost(why);
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
  private async restart(reason: "compacted" | "error" | "periodic"): Promise<void> {
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

  private deliver(events: PeerEvent[]): void {
    if (events.length === 0) return;
    this.delivery = this.delivery.then(() =>
      this.options.onPeers(events).catch((error: Error) => {
        this.options.logger.error({ err: error, changes: events.length }, `applying ${events.length} peer change(s) failed`);
      }),
    );
  }
}
