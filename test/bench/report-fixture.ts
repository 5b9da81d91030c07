import type { BenchRep, BenchReport, PathResult } from "../../src/bench/results.js";

/** A rep with every measure, TCP figures given; the rest derived so each path differs. */
export function rep(tcp1: number, tcp4: number, rtt: number, overrides: Partial<BenchRep> = {}): BenchRep {
  const run = (gbps: number) => ({
    gbps,
    bytes: (gbps * 1e9 * 2) / 8,
    retransmits: 0,
    seconds: 2,
    machineCpuSeconds: 1,
    daemonCpuSeconds: 0.5,
    perCoreCpuSeconds: [0.5, 0.5],
    softirqCpuSeconds: 0.2,
  });
  return {
    tcp1: run(tcp1),
    tcp4: run(tcp4),
    idleRttUs: rtt,
    loadedRttUs: rtt * 4,
    requestsPerSecond: 1e6 / rtt,
    udpPacketsPerSecond: 100_000,
    udpLossPercent: 1,
    daemonRssMiB: 90,
    errors: [],
    ...overrides,
  };
}

export function pathResult(id: string, label: string, reps: BenchRep[], extra: Partial<PathResult> = {}): PathResult {
  return { id, label, lab: { name: `wb-${id}`, dir: `/tmp/${id}` }, mtu: 1450, daemons: "weft", reps, load: [0.5, 0.7], ...extra };
}

export function report(results: PathResult[], settings: Partial<BenchReport["settings"]> = {}): BenchReport {
  return {
    version: 1,
    startedAt: "2026-12-01T14:00:00.000Z",
    command: "weft bench --reps 3",
    settings: { paths: results.map((r) => r.id), reps: 3, duration: 5, cpu: "shared", ...settings },
    machine: { cpus: 2, kernel: "6.1.0", memoryGiB: 24 },
    results,
  };
}
