import { describe, expect, it } from "vitest";
import { timeAsyncCalls } from "../../src/observe/call-timing.js";
import { LEASE_ACQUISITION_RESULTS, createMetrics } from "../../src/observe/metrics.js";
import { VERSION } from "../../src/version.js";

/** The value of one sample line in Prometheus text, e.g. `weft_peers 3`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("createMetrics", () => {
  it("exposes every control-plane metric with weft_ names and the values set", async () => {
    const metrics = createMetrics();
    metrics.trackLeaseExpiry(new Date(1_800_000_000_000));
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
      ["weft_lease_expiry_timestamp_seconds", 1_800_000_000],
      ["weft_lease_reservation", 0],
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
    expect(text).toContain("# TYPE weft_lease_expiry_timestamp_seconds gauge");
    expect(text).toContain("# TYPE weft_lease_renewals_total counter");
  });

  it("includes the standard process_* and nodejs_* metrics unprefixed", async () => {
    const text = await createMetrics().registry.metrics();
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/^weft_process_/m);
  });

  it("exports weft_build_info with the version, then the backend and engine once known", async () => {
    const metrics = createMetrics({ collectDefault: false });
    expect(sample(await metrics.registry.metrics(), `weft_build_info{version="${VERSION}",backend="",engine=""}`)).toBe(1);
    metrics.setBuildInfo({ backend: "vxlan", engine: "kernel" });
    const text = await metrics.registry.metrics();
    expect(sample(text, `weft_build_info{version="${VERSION}",backend="vxlan",engine="kernel"}`)).toBe(1);
    expect(text.match(/^weft_build_info\{/gm)).toHaveLength(1);
  });

  it("exports weft_ready{check} from the readiness checks at every scrape", async () => {
    const metrics = createMetrics({ collectDefault: false });
    const checks: Record<string, boolean | string> = { lease: true, backend: false, etcd: "etcd unreachable" };
    metrics.trackReadiness(() => checks);
    let text = await metrics.registry.metrics();
    expect([sample(text, 'weft_ready{check="lease"}'), sample(text, 'weft_ready{check="backend"}'), sample(text, 'weft_ready{check="etcd"}')]).toEqual([1, 0, 0]);
    checks.backend = true;
    text = await metrics.registry.metrics();
    expect(sample(text, 'weft_ready{check="backend"}')).toBe(1);
  });

  it("gives every instance its own registry (two daemons in one process)", async () => {
    const a = createMetrics({ collectDefault: false });
    const b = createMetrics({ collectDefault: false });
    a.peers.set(5);
    b.peers.set(7);
    expect(sample(await a.registry.metrics(), "weft_peers")).toBe(5);
    expect(sample(await b.registry.metrics(), "weft_peers")).toBe(7);
  });

  it("exports the lease expiry as a timestamp, and a reservation as its own gauge (no sentinel)", async () => {
    const metrics = createMetrics({ collectDefault: false });
    const at = (text: string) => [sample(text, "weft_lease_expiry_timestamp_seconds"), sample(text, "weft_lease_reservation")];
    expect(at(await metrics.registry.metrics())).toEqual([0, 0]);
    metrics.trackLeaseExpiry(new Date(1_700_000_090_400));
    expect(at(await metrics.registry.metrics())).toEqual([1_700_000_090, 0]);
    metrics.trackLeaseExpiry(undefined);
    expect(at(await metrics.registry.metrics())).toEqual([1_700_000_090, 0]);
    metrics.trackLeaseExpiry("reservation");
    expect(at(await metrics.registry.metrics())).toEqual([0, 1]);
  });

  it("times async calls of an object into the etcd histogram, failures included, by method name", async () => {
    const metrics = createMetrics({ collectDefault: false });
    class Client {
      async get(): Promise<string> {
        return "value";
      }
      async fail(): Promise<void> {
        throw new Error("etcd unreachable");
      }
      async call(): Promise<void> {}
      sync(): number {
        return 1;
      }
    }
    const client = timeAsyncCalls(new Client(), metrics.etcdRequestSeconds, ["call"]);
    expect(await client.get()).toBe("value");
    await expect(client.fail()).rejects.toThrow("etcd unreachable");
    await client.call();
    expect(client.sync()).toBe(1);
    const text = await metrics.registry.metrics();
    expect(sample(text, 'weft_etcd_request_duration_seconds_count{call="get"}')).toBe(1);
    expect(sample(text, 'weft_etcd_request_duration_seconds_count{call="fail"}')).toBe(1);
    expect(text).not.toContain('call="call"');
    expect(text).not.toContain('call="sync"');
  });

  it("lets a backend register its own metric on the registry", async () => {
    const metrics = createMetrics({ collectDefault: false });
    const { Counter } = await import("prom-client");
    const packets = new Counter({ name: "weft_udp_packets_total", help: "test", registers: [metrics.registry] });
    packets.inc(10);
    expect(sample(await metrics.registry.metrics(), "weft_udp_packets_total")).toBe(10);
  });
});
