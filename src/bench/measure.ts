import { readFile } from "node:fs/promises";
import { execInNamespace } from "../lab/netns.js";

/**
 * What the data-path benchmark measures, one function each: iperf3 throughput, ping RTT,
 * CPU busy time of the machine and of given processes, resident memory.
 */

export interface ThroughputSample {
  gbps: number;
  retransmits: number;
}

interface IperfReport {
  end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
  error?: string;
}

/** iperf3 client in `namespace` against `server`; receiver-side Gb/s. */
export async function iperf(namespace: string, server: string, streams: number, seconds: number): Promise<ThroughputSample> {
  const result = await execInNamespace(
    namespace,
    "iperf3",
    ["-c", server, "-t", String(seconds), "-O", "1", "-P", String(streams), "-J"],
    { timeoutMs: (seconds + 20) * 1000, allowFailure: true },
  );
  let report: IperfReport;
  try {
    report = JSON.parse(result.stdout) as IperfReport;
  } catch {
    throw new Error(`iperf3 to ${server} from ${namespace} printed no JSON: ${result.stderr.trim() || result.stdout.slice(0, 200)}`);
  }
  const bps = report.end?.sum_received?.bits_per_second;
  if (report.error || bps === undefined) throw new Error(`iperf3 to ${server} from ${namespace} failed: ${report.error ?? "no result"}`);
  return { gbps: bps / 1e9, retransmits: report.end?.sum_sent?.retransmits ?? 0 };
}

/** Average RTT in microseconds of `count` pings at `intervalSeconds`. */
export async function pingRtt(namespace: string, target: string, count: number, intervalSeconds: number): Promise<number> {
  const result = await execInNamespace(namespace, "ping", ["-n", "-q", "-c", String(count), "-i", String(intervalSeconds), target], {
    timeoutMs: count * intervalSeconds * 1000 + 15_000,
  });
  const match = /= [\d.]+\/([\d.]+)\//.exec(result.stdout);
  if (!match) throw new Error(`ping ${target} from ${namespace}: no RTT summary in "${result.stdout.trim()}"`);
  return Number(match[1]) * 1000;
}

/** Busy and total jiffies of all CPUs (/proc/stat), for "both cores %" over an interval. */
export async function cpuJiffies(): Promise<{ busy: number; total: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: total - idle, total };
}

/** utime + stime of a process, all threads, in clock ticks (0 if it is gone). */
export async function processTicks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Resident set size in MiB (0 if the process is gone). */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
