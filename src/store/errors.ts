/**
 * An etcd call that failed, naming the endpoints, the operation and its key (or lease, or TTL);
 * the client's own error is the cause. The message is what people read; code branches on the class.
 */
export class EtcdCallError extends Error {
  constructor(
    readonly endpoints: string,
    readonly operation: string,
    readonly subject: string,
    cause: unknown,
  ) {
    super(`etcd ${endpoints}: ${operation} ${subject}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "EtcdCallError";
  }
}

/** A watch that etcd ended (compaction, a cancelled or broken stream); `compacted` when its history is gone. */
export class WatchInterruptedError extends Error {
  constructor(
    readonly prefix: string,
    readonly endpoints: string,
    readonly compacted: boolean,
    cause: Error,
  ) {
    super(`watch of ${prefix} on ${endpoints}: ${cause.message || "cancelled"}`, { cause });
    this.name = "WatchInterruptedError";
  }
}
