#!/usr/bin/env node
/**
 * `npm run bench:dataplane`: the data-path benchmark of issue 4. For each path it builds a
 * 2-host lab (real daemons, real etcd), then from container h1c1 to h2c1 measures iperf3 with
 * 1 and 4 TCP streams (median of --reps runs), ping RTT, CPU busy time of the machine and of
 * the two daemons (their engine threads included), and the daemons' RSS. Prints one table
 * with ratios to kernel vxlan measured in the same run.
 *
 *   node dist/bench/dataplane.js [--reps 3] [--duration 5] [--paths kernel-vxlan,udp,userspace-vxlan]
 *                                [--queues 1,2] [--queue-threads 2] [--json out.json]
 *
 * --queues and --queue-threads (lists) run every userspace path once per combination, with
 * the Backend options "Queues"/"QueueThreads" set (absent: the backend's default).
 *
 * Needs root, iperf3, ping, etcd and a built weft (npm run build). Not a test: numbers on a
 * shared 2-vCPU VM move ±30 % between runs; compare rows of one run.
 */
import { rm, writeFile } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { buildLab, teardownLab, type Lab } from "../lab/lab.js";
import { uniquePrefix } from "../lab/netns.js";
import { sleep } from "../async/sleep.js";
import { spawnDetachedInNamespace } from "../process/detached.js";
import { terminatePids } from "../process/pids.js";
import { cpuJiffies, iperf, median, pingRtt, processTicks, rssMiB } from "./measure.js";
import { errorMessage } from "../errors/error-message.js";

interface PathSpec {
  id: string;
  label: string;
  backend: Record<string, unknown>;
}

const PATHS: readonly PathSpec[] = [
  { id: "kernel-vxlan", label: "kernel vxlan", backend: { Type: "vxlan" } },
  { id: "udp", label: "weft udp", backend: { Type: "udp" } },
  { id: "userspace-vxlan", label: "weft userspace vxlan", backend: { Type: "vxlan", Userspace: true } },
];

interface Run {
  gbps: number;
  retransmits: number;
  machineCpu: number;
  daemonCpu: number;
}

interface PathResult {
  path: PathSpec;
  error?: string;
  mtu?: number;
  single: Run[];
  four: Run[];
  pingUs?: number;
  rssMiB?: number;
  /** 1-minute load average before and after: other work on the machine skews every figure. */
  load?: [number, number];
}

interface Settings {
  reps: number;
  duration: number;
  paths: PathSpec[];
  /** Engine queue counts to try on every userspace path; empty: the backend default. */
  queues: number[];
  /** Threads per queue (1 shared, 2 one per direction) to try; empty: the default. */
  queueThreads: number[];
  json?: string;
}

function parseArgs(argv: readonly string[]): Settings {
  const settings: Settings = { reps: 3, duration: 5, paths: [...PATHS], queues: [], queueThreads: [] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] as string).split("=", 2);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${flag}: needs a value`);
    if (flag === "--reps") settings.reps = positiveInteger(flag, value);
    else if (flag === "--duration") settings.duration = positiveInteger(flag, value);
    else if (flag === "--json") settings.json = value;
    else if (flag === "--queues") settings.queues = value.split(",").map((part) => positiveInteger(flag, part));
    else if (flag === "--queue-threads") settings.queueThreads = value.split(",").map((part) => positiveInteger(flag, part));
    else if (flag === "--paths") {
      settings.paths = value.split(",").map((id) => {
        const path = PATHS.find((candidate) => candidate.id === id);
        if (!path) throw new Error(`--paths: "${id}" is not one of ${PATHS.map((p) => p.id).join(", ")}`);
        return path;
      });
    } else throw new Error(`unknown option ${flag}; use --reps, --duration, --paths, --queues, --queue-threads, --json`);
  }
  return { ...settings, paths: settings.paths.flatMap((path) => variants(path, settings)) };
}

/** A userspace path once per --queues × --queue-threads combination; kernel vxlan as it is. */
function variants(path: PathSpec, settings: Settings): PathSpec[] {
  if (path.id === "kernel-vxlan") return [path];
  const queues = settings.queues.length ? settings.queues : [undefined];
  const threads = settings.queueThreads.length ? settings.queueThreads : [undefined];
  return queues.flatMap((q) =>
    threads.map((t) => ({
      id: `${path.id}${q === undefined ? "" : `-q${q}`}${t === undefined ? "" : `-t${t}`}`,
      label: `${path.label}${q === undefined ? "" : ` q=${q}`}${t === undefined ? "" : ` t=${t}`}`,
      backend: { ...path.backend, ...(q === undefined ? {} : { Queues: q }), ...(t === undefined ? {} : { QueueThreads: t }) },
    })),
  );
}

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag}: "${text}" is not a positive integer`);
  return value;
}

/**
 * One iperf3 run with the CPU of the machine and of the daemons sampled around it. iperf3's
 * server sometimes still winds down the previous test and resets the next control connection:
 * pause first, and retry a failed run once.
 */
async function measuredRun(lab: Lab, daemons: number[], server: string, streams: number, seconds: number): Promise<Run> {
  await sleep(500);
  try {
    return await measuredRunOnce(lab, daemons, server, streams, seconds);
  } catch {
    await sleep(1500);
    return measuredRunOnce(lab, daemons, server, streams, seconds);
  }
}

async function measuredRunOnce(lab: Lab, daemons: number[], server: string, streams: number, seconds: number): Promise<Run> {
  const cpuBefore = await cpuJiffies();
  const ticksBefore = await Promise.all(daemons.map(processTicks));
  const started = performance.now();
  const sample = await iperf(lab.container("h1c1").namespace, server, streams, seconds);
  const wallSeconds = (performance.now() - started) / 1000;
  const cpuAfter = await cpuJiffies();
  const ticksAfter = await Promise.all(daemons.map(processTicks));
  const daemonTicks = ticksAfter.reduce((sum, ticks, i) => sum + ticks - (ticksBefore[i] ?? 0), 0);
  return {
    ...sample,
    machineCpu: (100 * (cpuAfter.busy - cpuBefore.busy)) / ((cpuAfter.total - cpuBefore.total) / 2), // 200 % = both cores
    daemonCpu: daemonTicks / wallSeconds, // ticks are 1/100 s: ticks per second = % of one core
  };
}

async function measurePath(path: PathSpec, settings: Settings, log: (line: string) => void): Promise<PathResult> {
  const name = uniquePrefix("wb").slice(0, -1);
  const labDir = join(tmpdir(), `weft-bench-${name}`);
  const result: PathResult = { path, single: [], four: [] };
  let server: number | undefined;
  try {
    const loadBefore = os.loadavg()[0] ?? 0;
    log(`${path.label}: building a 2-host lab (${name}-*), load average ${loadBefore.toFixed(1)}`);
    const lab = await buildLab({ name, labDir, hosts: 2, containersPerHost: 1, networkConfig: { Network: "10.66.0.0/16", Backend: path.backend } });
    result.mtu = lab.host("h1").state.mtu;
    const target = lab.container("h2c1").address as string;
    const daemons = lab.hosts.map((host) => host.state.daemonPid).filter((pid): pid is number => pid !== undefined);
    server = spawnDetachedInNamespace(lab.container("h2c1").namespace, "iperf3", ["-s", "-B", target], "/dev/null");
    await sleep(500);
    await pingRtt(lab.container("h1c1").namespace, target, 5, 0.2); // warm: ARP, routes, first-packet paths
    for (let rep = 1; rep <= settings.reps; rep++) {
      const single = await measuredRun(lab, daemons, target, 1, settings.duration);
      result.single.push(single);
      const four = await measuredRun(lab, daemons, target, 4, settings.duration);
      result.four.push(four);
      log(`${path.label}: rep ${rep}: 1 stream ${single.gbps.toFixed(2)} Gb/s, 4 streams ${four.gbps.toFixed(2)} Gb/s`);
    }
    result.pingUs = await pingRtt(lab.container("h1c1").namespace, target, 200, 0.005);
    result.rssMiB = Math.max(...(await Promise.all(daemons.map(rssMiB))));
    result.load = [loadBefore, os.loadavg()[0] ?? 0];
  } catch (error) {
    result.error = errorMessage(error).split("\n")[0];
    log(`${path.label}: FAILED: ${result.error}`);
  } finally {
    if (server !== undefined) await terminatePids([server], 1000);
    await teardownLab({ name, labDir }).catch(() => undefined);
    await rm(labDir, { recursive: true, force: true });
  }
  return result;
}

function summary(runs: readonly Run[], pick: (run: Run) => number): string {
  if (runs.length === 0) return "–";
  const values = runs.map(pick);
  return `${median(values).toFixed(2)} [${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}]`;
}

function formatTable(results: readonly PathResult[]): string {
  const kernel = results.find((result) => result.path.id === "kernel-vxlan" && !result.error);
  const ratio = (runs: readonly Run[], base: readonly Run[] | undefined) =>
    base && base.length && runs.length ? `${(median(runs.map((r) => r.gbps)) / median(base.map((r) => r.gbps))).toFixed(2)}×` : "–";
  const header = [
    "path", "MTU", "1 stream Gb/s", "vs kernel", "4 streams Gb/s", "vs kernel", "ping µs",
    "CPU 1 str: all % / daemons %", "CPU 4 str: all % / daemons %", "daemon RSS MiB", "retrans 1/4", "load avg",
  ];
  const rows = results.map((result) => {
    if (result.error) return [result.path.label, "", `failed: ${result.error}`, "", "", "", "", "", "", "", "", ""];
    const cpu = (runs: readonly Run[]) =>
      `${median(runs.map((r) => r.machineCpu)).toFixed(0)} / ${median(runs.map((r) => r.daemonCpu)).toFixed(0)}`;
    return [
      result.path.label,
      String(result.mtu ?? ""),
      summary(result.single, (run) => run.gbps),
      ratio(result.single, kernel?.single),
      summary(result.four, (run) => run.gbps),
      ratio(result.four, kernel?.four),
      result.pingUs === undefined ? "–" : result.pingUs.toFixed(0),
      cpu(result.single),
      cpu(result.four),
      result.rssMiB === undefined ? "–" : result.rssMiB.toFixed(0),
      `${median(result.single.map((r) => r.retransmits))} / ${median(result.four.map((r) => r.retransmits))}`,
      result.load ? `${result.load[0].toFixed(1)} → ${result.load[1].toFixed(1)}` : "–",
    ];
  });
  const lines = [header, ...rows].map((cells) => `| ${cells.join(" | ")} |`);
  lines.splice(1, 0, `|${header.map(() => "---").join("|")}|`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`weft dataplane benchmark: ${settings.reps} reps × ${settings.duration} s, paths ${settings.paths.map((p) => p.id).join(", ")}`);
  const results: PathResult[] = [];
  for (const path of settings.paths) results.push(await measurePath(path, settings, log));
  process.stdout.write(`${formatTable(results)}\n`);
  process.stdout.write(
    `\nmedian [min–max] of ${settings.reps} runs, ${settings.duration} s each, container to container (h1c1 → h2c1); ` +
      "CPU: all % = busy time of all cores (200 % = 2 cores), daemons % = both weft daemons incl. engine threads (100 % = 1 core)\n",
  );
  if (settings.json) await writeFile(settings.json, `${JSON.stringify({ settings: { ...settings, paths: settings.paths.map((p) => p.id) }, results }, null, 2)}\n`);
  if (results.some((result) => result.error)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:dataplane: ${errorMessage(error)}\n`);
  process.exitCode = 1;
});
