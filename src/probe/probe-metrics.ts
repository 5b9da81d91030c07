import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { VERDICT_KINDS, type VerdictKind } from "./verdict.js";

/**
 * The daemon's probe metrics. No per-peer labels: a 1000-host cluster must not export a
 * million series. Which peer is in which state is in the log line of each change (and /status).
 */
export interface ProbeMetrics {
  /** weft_probe_rtt_seconds: underlay echo round trips, every peer in one histogram. */
  rtt: Histogram;
  /** weft_probe_peers{verdict}: peer paths (one per family of a peer) per verdict as of the last round. */
  peers: Gauge<"verdict">;
  /** weft_probe_failures_total{probe="underlay"|"path_mtu"|"overlay"}. */
  failures: Counter<"probe">;
  /** weft_probe_rounds_total: rounds completed (a stuck prober stops counting). */
  rounds: Counter;
}

export type ProbeKind = "underlay" | "path_mtu" | "overlay";
export const PROBE_KINDS: readonly ProbeKind[] = ["underlay", "path_mtu", "overlay"];

/** Registered once per registry (a restarted prober reuses them). */
export function probeMetrics(registry: Registry): ProbeMetrics {
  const existing = registry.getSingleMetric("weft_probe_rounds_total");
  if (existing) {
    return {
      rtt: registry.getSingleMetric("weft_probe_rtt_seconds") as Histogram,
      peers: registry.getSingleMetric("weft_probe_peers") as Gauge<"verdict">,
      failures: registry.getSingleMetric("weft_probe_failures_total") as Counter<"probe">,
      rounds: existing as Counter,
    };
  }
  const registers = [registry];
  const peers = new Gauge({ name: "weft_probe_peers", help: `Peer paths (a dual-stack peer has one per family) by the verdict of their last probe (${VERDICT_KINDS.join(", ")})`, labelNames: ["verdict"] as const, registers });
  for (const verdict of VERDICT_KINDS) peers.set({ verdict }, 0);
  const failures = new Counter({
    name: "weft_probe_failures_total",
    help: "Failed probes: underlay (echo lost), path_mtu (a DF echo of the interface MTU did not cross), overlay (echo through the encapsulation lost)",
    labelNames: ["probe"] as const,
    registers,
  });
  for (const probe of PROBE_KINDS) failures.inc({ probe }, 0);
  return {
    rtt: new Histogram({
      name: "weft_probe_rtt_seconds",
      help: "Round-trip time of underlay ICMP echoes to peers",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    peers,
    failures,
    rounds: new Counter({ name: "weft_probe_rounds_total", help: "Completed rounds of peer probing (--peer-probe-interval)", registers }),
  };
}

export function recordVerdictCounts(metrics: ProbeMetrics, verdicts: Iterable<VerdictKind>): void {
  const counts = new Map<VerdictKind, number>(VERDICT_KINDS.map((kind) => [kind, 0]));
  for (const verdict of verdicts) counts.set(verdict, (counts.get(verdict) ?? 0) + 1);
  for (const [verdict, count] of counts) metrics.peers.set({ verdict }, count);
}
