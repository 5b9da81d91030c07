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

/**
 * A TLS credential file (--etcd-cafile, --etcd-certfile, --etcd-keyfile) that cannot be used:
 * unreadable, not PEM, or a key that does not belong to the certificate. Not a
 * ConfigurationError: the file may appear or be fixed later (a certificate agent writing it
 * after boot, a rotation), and the store reads it again when it changes.
 */
export class CredentialFileError extends Error {
  constructor(
    readonly flag: string,
    readonly path: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`${flag} ${path}: ${problem}`, options);
    this.name = "CredentialFileError";
  }
}

/**
 * etcd would not let weft in: a TLS handshake that failed (either side refused the other's
 * certificate) or a refused user name and password. `message` says which and what to check,
 * never a secret; the client's own error is the cause.
 */
export class EtcdAccessError extends Error {
  constructor(
    readonly kind: "tls" | "auth",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "EtcdAccessError";
  }
}
