import type { BenchRep, PathResult, ThroughputRep } from "./results.js";
import { ratioTo, summarize, type Summary } from "./stats.js";

/**
 * The figures the bench reports, one entry each: how a rep yields it, its unit, and which way
 * is better. The table, the JSON summary and the chart all walk this list, so a new figure is
 * one entry here.
 */
export interface Metric {
  key: string;
  /** Column heading, with unit. */
  label: string;
  unit: string;
  better: "higher" | "lower";
  digits: number;
  /**
   * Whether a ratio to kernel vxlan means anything: not for the daemons' CPU, since kernel
   * vxlan's daemons move no packets (a few hundredths of a second make a ratio of 100×).
   */
  ratio: boolean;
  pick: (rep: BenchRep) => number | undefined;
}

/** CPU seconds per gigabyte over both TCP runs of a rep (more data, steadier figure). */
function cpuPerGigabyte(rep: BenchRep, pick: (run: ThroughputRep) => number | undefined): number | undefined {
  const runs = [rep.tcp1, rep.tcp4].filter((run): run is ThroughputRep => run !== undefined && pick(run) !== undefined);
  const gigabytes = runs.reduce((sum, run) => sum + run.bytes / 1e9, 0);
  if (gigabytes <= 0) return undefined;
  return runs.reduce((sum, run) => sum + (pick(run) as number), 0) / gigabytes;
}

export const METRICS: readonly Metric[] = [
  { key: "tcp1Gbps", label: "TCP 1 stream Gb/s", unit: "Gb/s", better: "higher", ratio: true, digits: 2, pick: (rep) => rep.tcp1?.gbps },
  { key: "tcp4Gbps", label: "TCP 4 streams Gb/s", unit: "Gb/s", better: "higher", ratio: true, digits: 2, pick: (rep) => rep.tcp4?.gbps },
  { key: "idleRttUs", label: "idle RTT µs", unit: "µs", better: "lower", ratio: true, digits: 0, pick: (rep) => rep.idleRttUs },
  { key: "loadedRttUs", label: "loaded RTT µs", unit: "µs", better: "lower", ratio: true, digits: 0, pick: (rep) => rep.loadedRttUs },
  { key: "requestsPerSecond", label: "TCP RR /s", unit: "/s", better: "higher", ratio: true, digits: 0, pick: (rep) => rep.requestsPerSecond },
  { key: "udpKpps", label: "UDP 64 B kpps", unit: "kpps", better: "higher", ratio: true, digits: 0, pick: (rep) => (rep.udpPacketsPerSecond === undefined ? undefined : rep.udpPacketsPerSecond / 1000) },
  { key: "udpLossPercent", label: "UDP loss %", unit: "%", better: "lower", ratio: true, digits: 1, pick: (rep) => rep.udpLossPercent },
  { key: "machineCpuPerGB", label: "CPU s/GB machine", unit: "s/GB", better: "lower", ratio: true, digits: 2, pick: (rep) => cpuPerGigabyte(rep, (run) => run.machineCpuSeconds) },
  { key: "daemonCpuPerGB", label: "CPU s/GB daemons", unit: "s/GB", better: "lower", ratio: false, digits: 2, pick: (rep) => cpuPerGigabyte(rep, (run) => run.daemonCpuSeconds) },
  { key: "daemonRssMiB", label: "daemon RSS MiB", unit: "MiB", better: "lower", ratio: true, digits: 0, pick: (rep) => rep.daemonRssMiB },
];

/** The path every ratio is taken against. */
export const REFERENCE_PATH = "vxlan";

export function metric(key: string): Metric {
  const found = METRICS.find((candidate) => candidate.key === key);
  if (!found) throw new Error(`no bench metric "${key}"; metrics are ${METRICS.map((m) => m.key).join(", ")}`);
  return found;
}

export interface MetricSummary {
  summary?: Summary;
  /** Median of this path over median of kernel vxlan in the same run. */
  ratio?: number;
}

/** Every metric of every path summarized, with its ratio to the reference path of the same run. */
export function summarizeResults(results: readonly PathResult[]): Map<string, Map<string, MetricSummary>> {
  const reference = results.find((result) => result.id === REFERENCE_PATH && result.error === undefined);
  const referenceSummaries = new Map(METRICS.map((m) => [m.key, reference ? summarize(reference.reps.map(m.pick)) : undefined]));
  return new Map(
    results.map((result) => [
      result.id,
      new Map(
        METRICS.map((m) => {
          const summary = summarize(result.reps.map(m.pick));
          return [m.key, { summary, ratio: m.ratio ? ratioTo(summary, referenceSummaries.get(m.key)) : undefined }];
        }),
      ),
    ]),
  );
}
