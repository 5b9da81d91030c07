import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Metrics of every backend's peers and of the kernel backends' programming, registered once per registry (a backend may be re-created). */
export interface ProgrammingMetrics {
  peers: Gauge<"backend">;
  failures: Counter<"backend">;
  repairs: Counter<"backend">;
  refusedPeers: Gauge<"backend">;
  /** weft_backend_kernel_programming_duration_seconds{backend}: one batch of kernel changes (route/neigh/fdb), applied. */
  programmingSeconds: Histogram<"backend">;
}

function histogram(registry: Registry, name: string, help: string): Histogram<"backend"> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Histogram) return existing as Histogram<"backend">;
  return new Histogram({ name, help, labelNames: ["backend"], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge<"backend"> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing as Gauge<"backend">;
  return new Gauge({ name, help, labelNames: ["backend"], registers: [registry] });
}

function counter(registry: Registry, name: string, help: string): Counter<"backend"> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<"backend">;
  return new Counter({ name, help, labelNames: ["backend"], registers: [registry] });
}

export function programmingMetrics(registry: Registry): ProgrammingMetrics {
  return {
    peers: gauge(registry, "weft_backend_peers", "Peers whose kernel state the backend has programmed"),
    failures: counter(registry, "weft_backend_kernel_failures_total", "Kernel changes (route/neigh/fdb) that failed"),
    repairs: counter(registry, "weft_backend_reconcile_repairs_total", "Kernel changes made by reconcile to repair drift"),
    refusedPeers: gauge(registry, "weft_backend_refused_peers", "Peers the backend cannot serve (host-gw: not on-link; other backend type; our own PublicIP)"),
    programmingSeconds: histogram(registry, "weft_backend_kernel_programming_duration_seconds", "Time to apply one batch of kernel changes (routes, neighbours, FDB entries)"),
  };
}

/** The peer gauges from a backend's PeerTable (after every change to it). */
export function recordPeerCounts(metrics: ProgrammingMetrics, backend: string, peers: { acceptedCount: number; refusedCount: number }): void {
  metrics.peers.set({ backend }, peers.acceptedCount);
  // The counters exist at 0 from the first change on: increase() in an alert misses a series' first value.
  metrics.failures.inc({ backend }, 0);
  metrics.repairs.inc({ backend }, 0);
  metrics.refusedPeers.set({ backend }, peers.refusedCount);
}
