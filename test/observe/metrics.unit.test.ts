import { describe, expect, it } from "vitest";
import { LEASE_ACQUISITION_RESULTS, createMetrics } from "../../src/observe/metrics.js";

/** The value of one sample line in Prometheus text, e.g. `weft_peers 3`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("createMetrics", () => {
  it("exposes every control-plane metric with weft_ names and the values set", async () => {
    const metrics = createMetrics();
    metrics.leaseExpirySeconds.set(86_000);
    metrics.renewals.inc();
    metrics.renewals.inc();
    metrics.renewalFailures.inc();
    metrics.peers.set(19);
    metrics.watchResyncs.inc({ reason: "compacted" });
    metrics.freeSubnets.set(237);
    metrics.leaseAcquisitions.inc({ result: "allocated" });
    metrics.etcdErrors.inc(3);
    const text = await metrics.registry.metrics();
    const expected: [string, number][] = [
      ["weft_lease_expiry_seconds", 86_000],
      ["weft_lease_renewals_total", 2],
      ["weft_lease_renewal_failures_total", 1],
      ["weft_peers", 19],
      ['weft_watch_resyncs_total{reason="compacted"}', 1],
      ['weft_watch_resyncs_total{reason="error"}', 0],
      ["weft_free_subnets", 237],
      ['weft_lease_acquisitions_total{result="allocated"}', 1],
      ['weft_lease_acquisitions_total{result="out-of-subnets"}', 0],
      ["weft_etcd_errors_total", 3],
    ];
    for (const [series, value] of expected) expect(sample(text, series), series).toBe(value);
    for (const result of LEASE_ACQUISITION_RESULTS) expect(text).toContain(`weft_lease_acquisitions_total{result="${result}"}`);
    expect(text).toContain("# TYPE weft_lease_expiry_seconds gauge");
    expect(text).toContain("# TYPE weft_lease_renewals_total counter");
  });

  it("includes default process metrics, prefixed weft_", async () => {
    const text = await createMetrics().registry.metrics();
    expect(sample(text, "weft_process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
    expect(text).toMatch(/^weft_nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/^process_/m);
  });

  it("gives every instance its own registry (two daemons in one process)", async () => {
    const a = createMetrics({ collectDefault: false });
    const b = createMetrics({ collectDefault: false });
    a.peers.set(5);
    b.peers.set(7);
    expect(sample(await a.registry.metrics(), "weft_peers")).toBe(5);
    expect(sample(await b.registry.metrics(), "weft_peers")).toBe(7);
  });

  it("counts the tracked lease expiry down at scrape time; a reservation is -1", async () => {
    const metrics = createMetrics({ collectDefault: false });
    metrics.trackLeaseExpiry(new Date(Date.now() + 90_000));
    const first = sample(await metrics.registry.metrics(), "weft_lease_expiry_seconds");
    expect(first).toBeGreaterThanOrEqual(89);
    expect(first).toBeLessThanOrEqual(90);
    metrics.trackLeaseExpiry(new Date(Date.now() + 1_500));
    // Kept on purpose: what is under test is the clock itself (1.1 s must pass for the countdown).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(sample(await metrics.registry.metrics(), "weft_lease_expiry_seconds")).toBeLessThanOrEqual(1);
    metrics.trackLeaseExpiry(new Date(Date.now() - 5_000));
    expect(sample(await metrics.registry.metrics(), "weft_lease_expiry_seconds")).toBe(0);
    metrics.trackLeaseExpiry("reservation");
    expect(sample(await metrics.registry.metrics(), "weft_lease_expiry_seconds")).toBe(-1);
    metrics.trackLeaseExpiry(undefined);
    metrics.leaseExpirySeconds.set(42);
    expect(sample(await metrics.registry.metrics(), "weft_lease_expiry_seconds")).toBe(42);
  });

  it("lets a backend register its own metric on the registry", async () => {
    const metrics = createMetrics({ collectDefault: false });
    const { Counter } = await import("prom-client");
    const packets = new Counter({ name: "weft_udp_packets_total", help: "test", registers: [metrics.registry] });
    packets.inc(10);
    expect(sample(await metrics.registry.metrics(), "weft_udp_packets_total")).toBe(10);
  });
});
