import type { Listing, StoredKey, WatchEvent, WatchHandlers } from "../store/records.js";
import type { LeaseStore } from "./lease-store.js";

/**
 * A `LeaseStore` in memory with the etcd v3 semantics the lease layer relies on, for fast tests
 * (as wireguard-go's tun/tuntest): one revision per write, mod revisions, compare-and-swap,
 * leases with a TTL that expire (deleting their keys) on an injectable clock, watches that
 * replay history from a revision, compaction (a watch from before it ends with compacted=true),
 * and an outage switch. Single-threaded; watch responses are delivered asynchronously, one per
 * revision, in order — as etcd's arrive over the network.
 */
export class InMemoryLeaseStore implements LeaseStore {
  readonly subnetsPrefix: string;
  private revision = 1;
  private compactRevision = 0;
  private readonly keys = new Map<string, StoredEntry>();
  private readonly leases = new Map<string, GrantedLease>();
  private readonly history: Revision[] = [];
  private readonly watches = new Set<ActiveWatch>();
  private nextLeaseId = 7_587_880_000_000_000_001n;
  private reachable = true;
  private watchesPaused = false;

  /** `clock` in ms (Date.now by default, so vitest's fake timers drive lease expiry too). */
  constructor(
    readonly prefix = "/coreos.com/network",
    private readonly clock: () => number = Date.now,
  ) {
    this.subnetsPrefix = `${prefix}/subnets/`;
  }

  get configKey(): string {
    return `${this.prefix}/config`;
  }

  // ---- LeaseStore ----

  async list(prefix: string): Promise<Listing> {
    this.enter("list", prefix);
    const keys = [...this.keys.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, entry]) => storedKey(key, entry));
    return { keys, revision: String(this.revision) };
  }

  async createIfAbsent(key: string, value: string, leaseId: string | undefined): Promise<boolean> {
    this.enter("create", key);
    if (this.keys.has(key)) return false;
    this.write([{ type: "put", key, value, leaseId }]);
    return true;
  }

  async replaceIfUnchanged(key: string, value: string, leaseId: string | undefined, modRevision: string): Promise<boolean> {
    this.enter("replace", key);
    if (this.modRevisionOf(key) !== modRevision) return false;
    this.write([{ type: "put", key, value, leaseId }]);
    return true;
  }

  async deleteIfUnchanged(key: string, modRevision: string): Promise<boolean> {
    this.enter("delete", key);
    if (this.modRevisionOf(key) !== modRevision) return false;
    // etcd: the compare succeeds for an absent key at "0"; deleting nothing writes no revision.
    if (this.keys.has(key)) this.write([{ type: "delete", key }]);
    return true;
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    this.enter("grant lease for", `${ttlSeconds} s`);
    const id = String(this.nextLeaseId++);
    this.leases.set(id, { ttlSeconds, expiresAtMs: this.clock() + ttlSeconds * 1000 });
    return id;
  }

  async revokeLease(leaseId: string): Promise<void> {
    this.enter("revoke lease", leaseId);
    if (!this.leases.has(leaseId)) throw this.failure("revoke lease", leaseId, "etcdserver: requested lease not found");
    this.endLease(leaseId);
  }

  async keepAliveOnce(leaseId: string): Promise<number | undefined> {
    this.enter("renew lease", leaseId);
    const lease = this.leases.get(leaseId);
    if (!lease) return undefined;
    lease.expiresAtMs = this.clock() + lease.ttlSeconds * 1000;
    return lease.ttlSeconds;
  }

  async watchPrefix(prefix: string, fromRevision: string, handlers: WatchHandlers): Promise<() => Promise<void>> {
    this.enter("watch", prefix);
    const watch: ActiveWatch = { prefix, nextRevision: Number(fromRevision), handlers };
    this.watches.add(watch);
    this.schedulePump();
    return async () => {
      this.watches.delete(watch);
    };
  }

  // ---- for tests: direct access and the etcd events the lease layer must survive ----

  async get(key: string): Promise<StoredKey | undefined> {
    this.enter("get", key);
    const entry = this.keys.get(key);
    return entry ? storedKey(key, entry) : undefined;
  }

  /** An unconditional put, as etcdctl does; `leaseId` attaches it to a lease. */
  async put(key: string, value: string, leaseId?: string): Promise<void> {
    this.enter("put", key);
    this.write([{ type: "put", key, value, leaseId }]);
  }

  async delete(key: string): Promise<boolean> {
    this.enter("delete", key);
    if (!this.keys.has(key)) return false;
    this.write([{ type: "delete", key }]);
    return true;
  }

  /** Several puts in one transaction: one revision, one watch response with every event. */
  async putAll(entries: readonly { key: string; value: string }[]): Promise<void> {
    this.enter("txn", entries.map((entry) => entry.key).join(","));
    this.write(entries.map(({ key, value }) => ({ type: "put" as const, key, value, leaseId: undefined })));
  }

  /** Seconds left on a lease; undefined when it no longer exists. */
  async timeToLive(leaseId: string): Promise<number | undefined> {
    this.enter("look up lease", leaseId);
    const lease = this.leases.get(leaseId);
    return lease ? Math.ceil((lease.expiresAtMs - this.clock()) / 1000) : undefined;
  }

  /** The current revision, as etcd's header reports it. */
  currentRevision(): string {
    return String(this.revision);
  }

  /** Forgets history before `revision` (default: the current one); older watches end as compacted. */
  compact(revision = this.revision): void {
    this.compactRevision = Math.max(this.compactRevision, revision);
    while (this.history.length > 0 && (this.history[0] as Revision).revision < this.compactRevision) this.history.shift();
    this.schedulePump();
  }

  /**
   * An outage: every call rejects and watches deliver nothing; back up, each watch catches up
   * from where it was (or ends as compacted), as etcd3's reconnecting watch does.
   */
  setReachable(reachable: boolean): void {
    this.reachable = reachable;
    if (reachable) this.schedulePump();
  }

  /** A partition of the watches only: writes go on, watches see nothing until resumeWatches(). */
  pauseWatches(): void {
    this.watchesPaused = true;
  }

  /** Each watch catches up from where it was, or ends as compacted when that history is gone. */
  resumeWatches(): void {
    this.watchesPaused = false;
    this.schedulePump();
  }

  /** Every open watch's stream fails for good (etcd cancelled it): each ends with onError. */
  breakWatches(reason = "watch stream failed"): void {
    for (const watch of [...this.watches]) this.endWatch(watch, reason);
  }

  /** Expires the leases whose TTL ran out by the clock (each deletes its keys at one revision). */
  expireLeases(): void {
    const now = this.clock();
    for (const [id, lease] of this.leases) {
      if (lease.expiresAtMs <= now) this.endLease(id);
    }
  }

  /** Number of open watches (for tests that check a watch was cancelled). */
  openWatches(): number {
    return this.watches.size;
  }

  // ---- internals ----

  /** Every operation: fails during an outage, and first lets leases due by the clock expire. */
  private enter(operation: string, subject: string): void {
    if (!this.reachable) throw this.failure(operation, subject, "14 UNAVAILABLE: no connection established");
    this.expireLeases();
  }

  private failure(operation: string, subject: string, problem: string): Error {
    return new Error(`etcd memory://${this.prefix}: ${operation} ${subject}: ${problem}`);
  }

  private modRevisionOf(key: string): string {
    return String(this.keys.get(key)?.modRevision ?? 0);
  }

  /** Applies one transaction's writes at one new revision. */
  private write(changes: readonly Change[]): void {
    for (const change of changes) {
      if (change.type === "put" && change.leaseId !== undefined && !this.leases.has(change.leaseId)) {
        throw this.failure("put", change.key, "etcdserver: requested lease not found");
      }
    }
    const revision = this.revision + 1;
    const events: WatchEvent[] = [];
    for (const change of changes) {
      if (change.type === "delete") {
        const entry = this.keys.get(change.key);
        if (!entry) continue;
        this.keys.delete(change.key);
        events.push({ type: "delete", key: change.key, value: "", leaseId: "0", modRevision: String(revision) });
        continue;
      }
      const entry: StoredEntry = { value: change.value, leaseId: change.leaseId ?? "0", modRevision: revision };
      this.keys.set(change.key, entry);
      events.push({ type: "put", ...storedKey(change.key, entry) });
    }
    if (events.length === 0) return;
    this.revision = revision;
    this.history.push({ revision, events });
    this.schedulePump();
  }

  private endLease(leaseId: string): void {
    this.leases.delete(leaseId);
    const attached = [...this.keys.entries()].filter(([, entry]) => entry.leaseId === leaseId).map(([key]) => key);
    if (attached.length > 0) this.write(attached.map((key) => ({ type: "delete" as const, key })));
  }

  private pumpScheduled = false;

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Brings every watch up to the current revision, one response per revision. */
  private pump(): void {
    if (!this.reachable || this.watchesPaused) return;
    for (const watch of [...this.watches]) {
      if (watch.nextRevision < this.compactRevision) {
        this.endWatch(watch, "mvcc: required revision has been compacted");
        continue;
      }
      for (const { revision, events } of this.history) {
        if (revision < watch.nextRevision) continue;
        if (!this.watches.has(watch)) break; // cancelled by a handler
        const matching = events.filter((event) => event.key.startsWith(watch.prefix));
        watch.nextRevision = revision + 1;
        if (matching.length > 0) watch.handlers.onEvents(matching, String(revision));
      }
      if (watch.nextRevision <= this.revision) watch.nextRevision = this.revision + 1;
    }
  }

  private endWatch(watch: ActiveWatch, reason: string): void {
    this.watches.delete(watch);
    const compacted = watch.nextRevision < this.compactRevision;
    watch.handlers.onError(new Error(`watch of ${watch.prefix} on memory://${this.prefix}: ${reason}`), compacted);
  }
}

interface StoredEntry {
  value: string;
  leaseId: string;
  modRevision: number;
}

interface GrantedLease {
  ttlSeconds: number;
  expiresAtMs: number;
}

interface Revision {
  revision: number;
  events: WatchEvent[];
}

interface ActiveWatch {
  prefix: string;
  /** The first revision this watch has not seen yet. */
  nextRevision: number;
  handlers: WatchHandlers;
}

type Change = { type: "put"; key: string; value: string; leaseId: string | undefined } | { type: "delete"; key: string };

function storedKey(key: string, entry: StoredEntry): StoredKey {
  return { key, value: entry.value, leaseId: entry.leaseId, modRevision: String(entry.modRevision) };
}
