import type { Listing, WatchHandlers } from "../store/records.js";

/**
 * The store operations the lease layer uses, as flannel's subnet `Registry`: etcd v3
 * semantics, implemented by `EtcdStore` (wired in by the daemon) and by `InMemoryLeaseStore`
 * for the fast tests. Every call may reject when the store is unreachable; the error names
 * the store, the operation and the key. Conditional writes resolve false when the condition
 * failed (someone else won), never reject for that.
 */
export interface LeaseStore {
  /** Where subnet leases live, with the trailing slash, e.g. /coreos.com/network/subnets/. */
  readonly subnetsPrefix: string;
  /** The network config key, e.g. /coreos.com/network/config (its parent holds subnetsPrefix). */
  readonly configKey: string;
  /** Every key under `prefix`, read at one revision (the listing's). */
  list(prefix: string): Promise<Listing>;
  /** Creates `key` only if it does not exist; attached to `leaseId` unless it is undefined. */
  createIfAbsent(key: string, value: string, leaseId: string | undefined): Promise<boolean>;
  /** Replaces `key` only if its mod revision is still `modRevision` ("0": the key is absent). */
  replaceIfUnchanged(key: string, value: string, leaseId: string | undefined, modRevision: string): Promise<boolean>;
  /** Deletes `key` only if its mod revision is still `modRevision`. */
  deleteIfUnchanged(key: string, modRevision: string): Promise<boolean>;
  /** A new store lease of `ttlSeconds`; its id as a decimal string. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Ends a store lease and deletes the keys attached to it; rejects when it is already gone. */
  revokeLease(leaseId: string): Promise<void>;
  /** Refreshes a lease to its granted TTL; the new TTL, or undefined when the lease has expired. */
  keepAliveOnce(leaseId: string): Promise<number | undefined>;
  /**
   * Reports every change under `prefix` from `fromRevision` on, one call per store response;
   * resolves with the function that ends the watch. A watch from a compacted revision, or one
   * whose stream fails for good, ends with `onError` and reports nothing more.
   */
  watchPrefix(prefix: string, fromRevision: string, handlers: WatchHandlers): Promise<() => Promise<void>>;
}
