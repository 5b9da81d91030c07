import type { Backend } from "./backend.js";
import type { Lease } from "../lease/types.js";

/**
 * A backend whose desired kernel state can be loaded from a lease set without programming
 * anything, so `weft doctor` can run the daemon's own reconcile as a dry run (or, with
 * --repair, for real) against leases it read from etcd.
 */
export interface LeaseSetLoader extends Backend {
  loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void>;
  /** Peers the backend cannot serve, one line each saying why (host-gw: not on-link). */
  refusedPeers(): string[];
}

export function canLoadLeaseSet(backend: Backend): backend is LeaseSetLoader {
  return typeof (backend as Partial<LeaseSetLoader>).loadLeaseSet === "function";
}
