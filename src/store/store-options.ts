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
  /** Deadline for every unary call; a frozen etcd is noticed within this time. */
  callTimeoutMs?: number;
}

export const DEFAULT_ETCD_PREFIX = "/coreos.com/network";
export const DEFAULT_ETCD_ENDPOINTS = ["http://127.0.0.1:4001", "http://127.0.0.1:2379"];
