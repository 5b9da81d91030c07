import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/**
 * weft's control-plane metrics on a registry of its own (never prom-client's global one, so
 * two daemons in one test process do not collide). Backends add theirs to `registry`.
 */
export interface WeftMetrics {
  registry: Registry;
  /** weft_lease_expiry_seconds: seconds until the own lease expires; -1 for a reservation. */
  leaseExpirySeconds: Gauge;
  /** weft_lease_renewals_total. */
  renewals: Counter;
  /** weft_lease_renewal_failures_total. */
  renewalFailures: Counter;
  /** weft_peers: other hosts' leases the backend knows of. */
  peers: Gauge;
  /** weft_watch_resyncs_total{reason="compacted"|"error"}. */
  watchResyncs: Counter<"reason">;
  /** weft_free_subnets: subnets of the range nobody holds. */
  freeSubnets: Gauge;
  /** weft_lease_acquisitions_total{result}; see LEASE_ACQUISITION_RESULTS. */
  leaseAcquisitions: Counter<"result">;
  /** weft_etcd_errors_total: failed etcd calls of any kind. */
  etcdErrors: Counter;
  /**
   * Makes weft_lease_expiry_seconds count down by itself: computed at every scrape from this
   * time ("reservation" → -1, undefined → stop tracking and keep the last set value).
   */
  trackLeaseExpiry(expiresAt: Date | "reservation" | undefined): void;
}

export const METRICS_PREFIX = "weft_";

export type WatchResyncReason = "compacted" | "error";
export const WATCH_RESYNC_REASONS: readonly WatchResyncReason[] = ["compacted", "error"];

/** Label values of weft_lease_acquisitions_total; the series exist at 0 from the start. */
export const LEASE_ACQUISITION_RESULTS = [
  "reused-by-public-ip",
  "reservation",
  "previous-subnet",
  "allocated",
  "out-of-subnets",
  "error",
] as const;

export function createMetrics(options: { collectDefault?: boolean } = {}): WeftMetrics {
  const registry = new Registry();
  if (options.collectDefault ?? true) collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  const registers = [registry];

  let trackedExpiry: Date | "reservation" | undefined;
  const leaseExpirySeconds = new Gauge({
    name: `${METRICS_PREFIX}lease_expiry_seconds`,
    help: "Seconds until this host's subnet lease expires in etcd; -1 for a reservation (never expires)",
    registers,
    collect() {
      if (trackedExpiry === "reservation") this.set(-1);
      else if (trackedExpiry) this.set(Math.max(0, Math.round((trackedExpiry.getTime() - Date.now()) / 1000)));
    },
  });
  const watchResyncs = new Counter({
    name: `${METRICS_PREFIX}watch_resyncs_total`,
    help: "Full re-lists of the subnet leases after the watch failed (compacted: revision compacted away; error: watch broke)",
    labelNames: ["reason"] as const,
    registers,
  });
  for (const reason of WATCH_RESYNC_REASONS) watchResyncs.inc({ reason }, 0);
  const leaseAcquisitions = new Counter({
    name: `${METRICS_PREFIX}lease_acquisitions_total`,
    help: `Subnet lease acquisitions by result (${LEASE_ACQUISITION_RESULTS.join(", ")})`,
    labelNames: ["result"] as const,
    registers,
  });
  for (const result of LEASE_ACQUISITION_RESULTS) leaseAcquisitions.inc({ result }, 0);

  return {
    registry,
    leaseExpirySeconds,
    renewals: new Counter({
      name: `${METRICS_PREFIX}lease_renewals_total`,
      help: "Successful renewals of this host's subnet lease",
      registers,
    }),
    renewalFailures: new Counter({
      name: `${METRICS_PREFIX}lease_renewal_failures_total`,
      help: "Failed attempts to renew this host's subnet lease (each is retried)",
      registers,
    }),
    peers: new Gauge({
      name: `${METRICS_PREFIX}peers`,
      help: "Other hosts' subnet leases currently known",
      registers,
    }),
    watchResyncs,
    freeSubnets: new Gauge({
      name: `${METRICS_PREFIX}free_subnets`,
      help: "Subnets between SubnetMin and SubnetMax that no host holds, as of the last listing",
      registers,
    }),
    leaseAcquisitions,
    etcdErrors: new Counter({
      name: `${METRICS_PREFIX}etcd_errors_total`,
      help: "Failed etcd calls (timeouts, unavailable endpoints, rejected requests)",
      registers,
    }),
    trackLeaseExpiry(expiresAt) {
      trackedExpiry = expiresAt;
    },
  };
}
