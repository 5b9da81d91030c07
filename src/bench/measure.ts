import { readFile } from "node:fs/promises";
import { inCpuset, type Cpuset } from "../lab/cpuset.js";
import { commandLineIn, runCommand, type CommandResult } from "../process/run-command.js";

/**
 * The bench's measuring tools, one function each: iperf3 (TCP throughput, UDP small packets),
 * ping (RTT), sockperf (request/response), and /proc (CPU time of the machine and of processes,
 * resident memory). Every tool runs inside a network namespace, and inside a host's cpuset when
 * the bench pins hosts to cores.
 */

/** Where a tool runs: a network namespace, optionally confined to a host's cpuset. */
export interface ToolPlace {
  namespace: string;
  cpuset?: Cpuset;
}

/**
 * The argv of `program args` in the place: the cpuset is joined outside `ip netns exec`, which
 * mounts a /sys of its own where the cgroup file system is not to be found.
 */
export function toolCommandLine(place: ToolPlace, program: string, args: readonly string[]): [string, string[]] {
  const [file, argv] = commandLineIn(place.namespace, program, args);
  return inCpuset(place.cpuset, file, argv);
}

function runTool(place: ToolPlace, program: string, args: readonly string[], timeoutMs: number): Promise<CommandResult> {
  const [command, argv] = toolCommandLine(place, program, args);
  return runCommand(command, argv, { timeoutMs, allowFailure: true });
}

interface IperfReport {
  end?: {
    sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number };
    sum_sent?: { retransmits?: number };
    sum?: { packets?: number; lost_packets?: number; lost_percent?: number; seconds?: number };
  };
  error?: string;
}

async function iperfReport(place: ToolPlace, server: string, args: readonly string[], seconds: number): Promise<IperfReport> {
  const result = await runTool(place, "iperf3", ["-c", server, "-t", String(seconds), "-J", ...args], (seconds + 20) * 1000);
  let report: IperfReport;
  try {
    report = JSON.parse(result.stdout) as IperfReport;
  } catch {
    throw new Error(`iperf3 to ${server} from ${place.namespace} printed no JSON: ${result.stderr.trim() || result.stdout.slice(0, 200) || `exit ${result.exitCode}`}`);
  }
  if (report.error) throw new Error(`iperf3 to ${server} from ${place.namespace}: ${report.error}`);
  return report;
}

export interface TcpSample {
  gbps: number;
  bytes: number;
  retransmits: number;
  seconds: number;
}

/** iperf3 TCP with `streams` parallel streams; receiver-side figures, the first second omitted (slow start). */
export async function iperfTcp(place: ToolPlace, server: string, streams: number, seconds: number): Promise<TcpSample> {
  const report = await iperfReport(place, server, ["-O", "1", "-P", String(streams)], seconds);
  const received = report.end?.sum_received;
  if (received?.bits_per_second === undefined || received.bytes === undefined) throw new Error(`iperf3 to ${server}: no receiver summary`);
  return {
    gbps: received.bits_per_second / 1e9,
    bytes: received.bytes,
    retransmits: report.end?.sum_sent?.retransmits ?? 0,
    seconds: received.seconds ?? seconds,
  };
}

export interface UdpSample {
  packetsPerSecond: number;
  lossPercent: number;
}

/** Pure: iperf3's UDP summary (the receiver's counts) as received packets/s and loss. */
export function udpSample(report: IperfReport): UdpSample {
  const sum = report.end?.sum;
  if (sum?.packets === undefined || sum.lost_packets === undefined || !sum.seconds) throw new Error("iperf3 UDP: no packet counts in its summary");
  return {
    packetsPerSecond: (sum.packets - sum.lost_packets) / sum.seconds,
    lossPercent: sum.lost_percent ?? (sum.packets > 0 ? (100 * sum.lost_packets) / sum.packets : 0),
  };
}

/** UDP datagrams with 64-byte payloads as fast as one iperf3 sender goes (-b 0). */
export async function iperfUdpSmall(place: ToolPlace, server: string, seconds: number): Promise<UdpSample> {
  return udpSample(await iperfReport(place, server, ["-u", "-l", "64", "-b", "0"], seconds));
}

/** Pure: the average RTT in µs from ping's summary line. */
export function parsePingAverageUs(stdout: string): number | undefined {
  const match = /= [\d.]+\/([\d.]+)\//.exec(stdout);
  return match ? Number(match[1]) * 1000 : undefined;
}

/** Average RTT in microseconds of `count` echoes `intervalSeconds` apart. */
export async function pingRtt(place: ToolPlace, target: string, count: number, intervalSeconds: number): Promise<number> {
  const result = await runTool(place, "ping", ["-n", "-q", "-c", String(count), "-i", String(intervalSeconds), "-W", "1", target], count * intervalSeconds * 1000 + 15_000);
  const average = parsePingAverageUs(result.stdout);
  if (average === undefined) throw new Error(`ping ${target} from ${place.namespace}: no RTT summary (${result.stdout.trim().split("\n").at(-2) ?? result.stderr.trim()})`);
  return average;
}

export const SOCKPERF_PORT = 11111;

/** A measure the installed tool cannot take at all (not a failure of the path under test). */
export class ToolLimitationError extends Error {}

/** Pure: transactions per second from sockperf ping-pong's "[Valid Duration] RunTime=…; ReceivedMessages=…" line. */
export function parseSockperfRate(output: string): number | undefined {
  const match = /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=\d+; ReceivedMessages=(\d+)/.exec(output);
  if (!match) return undefined;
  const seconds = Number(match[1]);
  return seconds > 0 ? Number(match[2]) / seconds : undefined;
}

/** sockperf ping-pong over TCP, 64-byte messages, one in flight: round trips per second. */
export async function sockperfPingPong(place: ToolPlace, server: string, seconds: number): Promise<number> {
  const result = await runTool(place, "sockperf", ["ping-pong", "--tcp", "-i", server, "-p", String(SOCKPERF_PORT), "-m", "64", "-t", String(seconds)], (seconds + 20) * 1000);
  const output = `${result.stdout}\n${result.stderr}`;
  // Debian 12's sockperf is 3.7, which takes IPv4 addresses only (IPv6 came with 3.8).
  if (server.includes(":") && /Invalid address/.test(output)) throw new ToolLimitationError(`sockperf cannot use the IPv6 address ${server} (IPv6 needs sockperf 3.8 or later; Debian 12 has 3.7)`);
  const rate = parseSockperfRate(output);
  if (rate === undefined) throw new Error(`sockperf ping-pong to ${server}: no RunTime/ReceivedMessages line (${(result.stderr || result.stdout).trim().split("\n").at(-1) ?? ""})`);
  return rate;
}

/** Clock ticks per second of /proc/<pid>/stat and /proc/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

export interface CpuSnapshot {
  /** Busy ticks per core (all but idle and iowait), index = CPU number. */
  busy: number[];
  softirq: number;
}

/** Pure: per-core busy ticks and total softirq ticks from /proc/stat. */
export function parseProcStat(text: string): CpuSnapshot {
  const busy: number[] = [];
  let softirq = 0;
  for (const line of text.split("\n")) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const values = (match[2] as string).trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
    busy[Number(match[1])] = total - (values[3] ?? 0) - (values[4] ?? 0);
    softirq += values[6] ?? 0;
  }
  return { busy, softirq };
}

export async function cpuSnapshot(): Promise<CpuSnapshot> {
  return parseProcStat(await readFile("/proc/stat", "utf8"));
}

/** Seconds per core and softirq seconds between two snapshots. */
export function cpuSecondsBetween(before: CpuSnapshot, after: CpuSnapshot): { perCore: number[]; softirq: number } {
  return {
    perCore: after.busy.map((ticks, core) => (ticks - (before.busy[core] ?? 0)) / USER_HZ),
    softirq: (after.softirq - before.softirq) / USER_HZ,
  };
}

/** utime + stime of a process and all its threads, in seconds (0 if it is gone). */
export async function processCpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return 0;
  }
}

/** Resident set size in MiB (undefined if the process is gone). */
export async function rssMiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}
