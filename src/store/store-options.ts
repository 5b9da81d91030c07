/** How to reach etcd: the --etcd-* flags (flannel-compat §4). */
export interface StoreOptions {
  endpoints: string[];
  /** Key prefix, default /coreos.com/network (no trailing slash). */
  prefix: string;
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  username?: string;
  password?: string;
  /** Deadline for every unary call (--etcd-call-timeout); a frozen etcd is noticed within this time. */
  callTimeoutMs?: number;
}

/**
 * 15 s: a slow etcd (4 s round trips through a loaded proxy) still answers well inside it, and a
 * frozen one is noticed long before any lease (24 h by default) is at risk. It was 5 s, which
 * locked hosts out of a live etcd with 3–4 s round trips.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 15_000;

export const DEFAULT_ETCD_PREFIX = "/coreos.com/network";
export const DEFAULT_ETCD_ENDPOINTS = ["http://127.0.0.1:4001", "http://127.0.0.1:2379"];
