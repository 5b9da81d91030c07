/**
 * What a key-value store with etcd v3 semantics hands back: keys with their lease and mod
 * revision, listings read at one revision, and watch events. No etcd client types leak out.
 */

/** One key as stored, with what weft needs from etcd's metadata. */
export interface StoredKey {
  key: string;
  value: string;
  /** etcd lease id as a decimal string; "0" when the key has no lease (a reservation). */
  leaseId: string;
  modRevision: string;
}

export interface Listing {
  keys: StoredKey[];
  /** The store revision the listing was read at; watch from revision + 1. */
  revision: string;
}

export interface WatchHandlers {
  /** Every event of every response, in order; an empty batch is a progress notification. */
  onEvents(events: WatchEvent[], revision: string): void;
  /** The watch was cancelled by etcd (e.g. compaction) or the stream failed for good. */
  onError(error: Error, compacted: boolean): void;
  /** The stream broke; the store re-creates the watch by itself (from where it was). */
  onDisconnected?(error: Error): void;
  /**
   * The watch is back after onDisconnected. What happened meanwhile may not all arrive as
   * events (an etcd restarted from an empty data dir resets its revisions): list again.
   */
  onReconnected?(): void;
}

export interface WatchEvent extends StoredKey {
  type: "put" | "delete";
}
