import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { VERSION } from "../version.js";

/**
 * weft's control-plane metrics on a registry of its own (never prom-client's global one, so
 * two daemons in one test process do not collide). Backends add theirs to `registry`.
 */
export interface WeftMetrics {
  registry: Registry;
  /** weft_lease_expiry_timestamp_seconds: Unix time the own lease expires; 0 while there is none that expires. */
  leaseExpiryTimestamp: Gauge;
  /** weft_lease_reservation: 1 when the own lease is a reservation (never expires), else 0. */
  leaseReservation: Gauge;
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
  /** weft_etcd_request_duration_seconds{call}: every etcd call, failed ones included. */
  etcdRequestSeconds: Histogram<"call">;
  /**
   * The own lease's expiry: a time (the timestamp gauge), "reservation" (reservation gauge 1,
   * timestamp 0), or undefined (keep what was set).
   */
  trackLeaseExpiry(expiresAt: Date | "reservation" | undefined): void;
  /** weft_build_info{version,backend,engine} 1, once the backend is known (backend "" and engine "" before). */
  setBuildInfo(info: { backend: string; engine: BuildEngine }): void;
  /** weft_ready{check}: 1/0 per /readyz check, read from `checks` at every scrape. */
  trackReadiness(checks: () => Readonly<Record<string, boolean | string>>): void;
}

/**
 * Where the data path runs: the kernel (vxlan, host-gw, wireguard's module), weft's userspace
 * engine (udp, vxlan-userspace, wireguard's own), Debian's wireguard-go, or nowhere (alloc).
 */
export type BuildEngine = "kernel" | "userspace" | "wireguard-go" | "none" | "";

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
  // Unprefixed process_* and nodejs_*: the names generic Node.js dashboards and alerts look for.
  // The event-loop delay histogram samples once a second, not every 10 ms (prom-client's
  // default): its timer alone woke an idle daemon 100 times a second, ~0.5 % of a core here.
  if (options.collectDefault ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  const registers = [registry];

  const leaseExpiryTimestamp = new Gauge({
    name: `${METRICS_PREFIX}lease_expiry_timestamp_seconds`,
    help: "Unix time at which this host's subnet lease expires in etcd; 0 while it has none that expires (a reservation, or not leased yet)",
    registers,
  });
  const leaseReservation = new Gauge({
    name: `${METRICS_PREFIX}lease_reservation`,
    help: "1 when this host's subnet lease is a reservation (never expires), else 0",
    registers,
  });
  const buildInfo = new Gauge({
    name: `${METRICS_PREFIX}build_info`,
    help: "Always 1: weft's version, the network's backend and where its data path runs (kernel, userspace, none)",
    labelNames: ["version", "backend", "engine"] as const,
    registers,
  });
  buildInfo.set({ version: VERSION, backend: "", engine: "" }, 1);
  let readinessChecks: (() => Readonly<Record<string, boolean | string>>) | undefined;
  new Gauge({
    name: `${METRICS_PREFIX}ready`,
    help: "1 when the /readyz check passes, 0 when it does not (yet)",
    labelNames: ["check"] as const,
    registers,
    collect() {
      if (!readinessChecks) return;
      for (const [check, value] of Object.entries(readinessChecks())) this.set({ check }, value === true ? 1 : 0);
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
    leaseExpiryTimestamp,
    leaseReservation,
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
    etcdRequestSeconds: new Histogram({
      name: `${METRICS_PREFIX}etcd_request_duration_seconds`,
      help: "Duration of etcd calls by call (get, list, put, createIfAbsent, keepAliveOnce, ...), failed ones included",
      labelNames: ["call"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    trackLeaseExpiry(expiresAt) {
      if (expiresAt === undefined) return;
      leaseReservation.set(expiresAt === "reservation" ? 1 : 0);
      leaseExpiryTimestamp.set(expiresAt === "reservation" ? 0 : Math.round(expiresAt.getTime() / 1000));
    },
    setBuildInfo({ backend, engine }) {
      buildInfo.reset();
      buildInfo.set({ version: VERSION, backend, engine }, 1);
    },
    trackReadiness(checks) {
      readinessChecks = checks;
    },
  };
}
