import type { Logger } from "pino";
import type { EtcdStore, WatchEvent } from "../store/etcd-store.js";
import { sameAttrs } from "./lease-value.js";
import { decodeLease, decodeLeases } from "./stored-lease.js";
import type { Lease, PeerEvent } from "./types.js";
import { errorMessage } from "../errors/error-message.js";

export interface PeerWatcherOptions {
  store: EtcdStore;
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

/**
 * Learns the other hosts' leases: list, then watch from revision + 1, handling every event of
 * every response. When the watch breaks (compaction, errors) it backs off, lists again and
 * diffs against what it knew — changed attributes included — so nothing is missed and no
 * error turns into a hot loop (flannel §2.1–2.3).
 */
export class PeerWatcher {
  private readonly peers = new Map<string, Lease>();
  private cancelWatch: (() => Promise<void>) | undefined;
  private delivery: Promise<void> = Promise.resolve();
  private backoffMs = BACKOFF_START_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private generation = 0;
  private readonly warnedOwnIP = new Set<string>();

  constructor(private readonly options: PeerWatcherOptions) {}

  /** Lists and starts watching; rejects only if the first listing fails. */
  async start(): Promise<void> {
    await this.resync("start");
    const interval = this.options.resyncIntervalMs ?? 300_000;
    this.resyncTimer = setInterval(() => void this.restart("periodic"), interval);
    this.resyncTimer.unref();
  }

  /** The peers known right now. */
  current(): Lease[] {
    return [...this.peers.values()];
  }

  /** Resolves when every batch handed out so far has been applied. */
  async settled(): Promise<void> {
    await this.delivery;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.cancelWatch?.();
    this.cancelWatch = undefined;
    await this.delivery;
  }

  private async resync(reason: "start" | "compacted" | "error" | "periodic"): Promise<void> {
    const { store, logger } = this.options;
    const generation = ++this.generation;
    await this.cancelWatch?.();
    this.cancelWatch = undefined;
    const listing = await store.list(store.subnetsPrefix);
    if (this.stopped || generation !== this.generation) return;
    if (reason !== "start") this.options.onResync?.(reason);
    const ownKey = this.options.ownKey();
    const listed = new Map(
      decodeLeases(listing.keys, logger)
        .filter((lease) => lease.key !== ownKey && !this.isOurs(lease))
        .map((lease) => [lease.key, lease]),
    );
    const events: PeerEvent[] = [];
    for (const [key, previous] of this.peers) {
      if (!listed.has(key)) events.push({ kind: "removed", lease: previous });
    }
    for (const [key, lease] of listed) {
      const previous = this.peers.get(key);
      if (!previous) events.push({ kind: "added", lease });
      else if (!sameAttrs(previous.attrs, lease.attrs)) events.push({ kind: "changed", lease, previous });
    }
    this.peers.clear();
    for (const [key, lease] of listed) this.peers.set(key, lease);
    if (reason !== "start" && events.length > 0) logger.info({ reason, changes: events.length }, "peer list resynchronised");
    // The own key may have vanished while the watch was down.
    if (ownKey && reason !== "start" && !listing.keys.some((stored) => stored.key === ownKey)) {
      this.options.onOwnLeaseLost("the lease key was deleted");
    }
    this.deliver(events);
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
    this.backoffMs = BACKOFF_START_MS;
  }

  private handleEvents(watchEvents: WatchEvent[]): void {
    const { logger } = this.options;
    const ownKey = this.options.ownKey();
    const events: PeerEvent[] = [];
    for (const event of watchEvents) {
      if (event.key === ownKey) {
        if (event.type === "delete") this.options.onOwnLeaseLost("the lease key was deleted");
        else this.checkOwnKeyHolder(event);
        continue;
      }
      const previous = this.peers.get(event.key);
      if (event.type === "delete") {
        if (previous) {
          this.peers.delete(event.key);
          events.push({ kind: "removed", lease: previous });
        }
        continue;
      }
      let lease: Lease;
      try {
        lease = decodeLease(event);
      } catch (error) {
        logger.warn({ key: event.key }, `skipping malformed lease: ${errorMessage(error)}`);
        continue;
      }
      if (this.isOurs(lease)) {
        // A key that now carries our PublicIP is no longer a peer, whatever it was before.
        if (previous) {
          this.peers.delete(event.key);
          events.push({ kind: "removed", lease: previous });
        }
        continue;
      }
      this.peers.set(event.key, lease);
      if (!previous) events.push({ kind: "added", lease });
      else if (!sameAttrs(previous.attrs, lease.attrs)) events.push({ kind: "changed", lease, previous });
    }
    this.deliver(events);
  }

  /** Someone wrote another PublicIP into our key: the subnet is theirs now. */
  private checkOwnKeyHolder(event: WatchEvent): void {
    const ownIP = this.options.ownPublicIP;
    if (ownIP === undefined) return;
    let holder: string;
    try {
      holder = decodeLease(event).attrs.publicIP;
    } catch {
      return; // a malformed value in our key is not a takeover; the next renewal rewrites nothing, reconcile keeps going
    }
    if (holder !== ownIP) this.options.onOwnLeaseLost(`the lease key was taken over by ${holder}`);
  }

  private isOurs(lease: Lease): boolean {
    if (this.options.ownPublicIP === undefined || lease.attrs.publicIP !== this.options.ownPublicIP) return false;
    if (lease.key !== this.options.ownKey() && !this.warnedOwnIP.has(lease.key)) {
      this.warnedOwnIP.add(lease.key);
      this.options.logger.info({ key: lease.key }, "a lease with our PublicIP is not a peer (ours, or a host sharing our address)");
    }
    return true;
  }

  private handleWatchError(error: Error, compacted: boolean): void {
    if (this.stopped) return;
    this.options.logger.warn({ compacted }, `peer watch interrupted: ${error.message}`);
    void this.restart(compacted ? "compacted" : "error");
  }

  /** Lists again after a back-off; keeps backing off (100 ms doubling to 5 s) while etcd fails. */
  private async restart(reason: "compacted" | "error" | "periodic"): Promise<void> {
    if (this.stopped) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    // Compaction is not a failure: list again at once.
    const delay = reason === "error" ? this.backoffMs : 0;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.resync(reason).catch((error: Error) => {
        if (this.stopped) return;
        this.options.logger.warn({ retryInMs: this.backoffMs }, `listing peers failed: ${error.message}`);
        void this.restart("error");
      });
    }, delay);
    if (reason === "error") this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
  }

  private deliver(events: PeerEvent[]): void {
    if (events.length === 0) return;
    this.delivery = this.delivery.then(() =>
      this.options.onPeers(events).catch((error: Error) => {
        this.options.logger.error(`applying ${events.length} peer change(s) failed: ${error.message}`);
      }),
    );
  }
}
