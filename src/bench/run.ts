/**
 * The bench's runner: for each path, a lab of its own (real etcd, daemons, dockerd where the path
 * needs it), the CPU and link modes applied, every measure --reps times, then teardown (also on
 * failure). Paths come from the registry in paths.ts; nothing here is specific to one of them.
 *
 * Per rep, in this order (each measure's failure is recorded and the rest still run):
 *   1. TCP 1 stream, 2. TCP 4 streams (iperf3; CPU of the machine, per core, and of the daemons
 *   sampled around each), 3. idle RTT (ping, 5 ms apart), 4. loaded RTT (the same ping during a
 *   1-stream TCP run), 5. TCP request/response (sockperf ping-pong), 6. UDP 64-byte packets/s and
 *   loss (iperf3 -u -b 0), 7. daemon RSS.
 */
import { readFile, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "../async/sleep.js";
import { errorMessage } from "../errors/error-message.js";
import { createCpuset, moveIntoCpuset, removeCpuset, type Cpuset } from "../lab/cpuset.js";
import { buildLab, teardownLab, type Lab } from "../lab/lab.js";
import { shapeLink } from "../lab/link-shaping.js";
import { uniquePrefix } from "../lab/netns.js";
import { waitForListener } from "../lab/readiness.js";
import { spawnDetached } from "../process/detached.js";
import { terminatePids } from "../process/pids.js";
import {
  cpuSecondsBetween,
  cpuSnapshot,
  iperfTcp,
  iperfUdpSmall,
  pingRtt,
  processCpuSeconds,
  rssMiB,
  sockperfPingPong,
  SOCKPERF_PORT,
  ToolLimitationError,
  toolCommandLine,
  type ToolPlace,
} from "./measure.js";
import type { BenchPath, PreparedPath } from "./paths.js";
import type { Progress } from "./progress.js";
import type { BenchRep, PathResult, ThroughputRep } from "./results.js";
import type { BenchSettings } from "./settings.js";

const IPERF_PORT = 5201;
/** ping -i 0.005: echoes 5 ms apart (below 200 ms needs root, which the bench has). */
const PING_INTERVAL_SECONDS = 0.005;

interface Running {
  lab: Lab;
  path: PreparedPath;
  cpusets: Map<string, Cpuset>;
  client: ToolPlace;
  server: ToolPlace;
  address: string;
  servers: number[];
}

/** In --cpu pinned, lab host hN gets core (N-1) mod #cores. */
function coreOf(hostName: string, cores: number): number {
  return (Number(hostName.slice(1)) - 1) % cores;
}

/** Fills `cpusets` as it creates them, so a failure halfway still leaves them for removal. */
async function pinHosts(lab: Lab, path: PreparedPath, cpusets: Map<string, Cpuset>): Promise<void> {
  const cores = os.cpus().length;
  for (const host of lab.hosts) cpusets.set(host.name, await createCpuset(lab.name, host.name, String(coreOf(host.name, cores))));
  const pids = [...path.daemons, ...lab.hosts.flatMap((host) => (host.state.dockerd?.pid === undefined ? [] : [{ host: host.name, pid: host.state.dockerd.pid }]))];
  for (const { host, pid } of pids) await moveIntoCpuset(cpusets.get(host) as Cpuset, pid);
  // A daemon that did not take its core would make the row a shared one under a pinned label.
  for (const { host, pid } of pids) {
    const allowed = /Cpus_allowed_list:\s*(\S+)/.exec(await readFile(`/proc/${pid}/status`, "utf8").catch(() => ""))?.[1];
    const wanted = (cpusets.get(host) as Cpuset).cpus;
    if (allowed !== undefined && allowed !== wanted) throw new Error(`--cpu pinned: PID ${pid} of ${host} may run on CPUs ${allowed}, not only ${wanted}`);
  }
}

async function startServers(running: Omit<Running, "servers">, logDir: string): Promise<number[]> {
  const { server, address } = running;
  const start = (program: string, args: string[], log: string) => {
    const [command, argv] = toolCommandLine(server, program, args);
    return spawnDetached(command, argv, join(logDir, log));
  };
  const pids = [start("iperf3", ["-s", "-B", address, "-p", String(IPERF_PORT)], "iperf3.log")];
  try {
    pids.push(start("sockperf", ["server", "--tcp", "-i", address, "-p", String(SOCKPERF_PORT)], "sockperf.log"));
  } catch {
    // sockperf missing: the request/response measure records that, the rest goes on.
  }
  await waitForListener(server.namespace, "tcp", IPERF_PORT, { timeoutMs: 10_000 });
  return pids;
}

async function daemonCpuSeconds(path: PreparedPath): Promise<number | undefined> {
  if (path.daemons.length === 0) return undefined;
  const seconds = await Promise.all(path.daemons.map(({ pid }) => processCpuSeconds(pid)));
  return seconds.reduce((sum, value) => sum + value, 0);
}

/**
 * One iperf3 TCP run with CPU sampled around it. iperf3's server sometimes still winds down
 * the previous test and resets the next control connection: a failed run is tried once more.
 */
async function throughputRun(running: Running, streams: number, seconds: number): Promise<ThroughputRep> {
  const once = async (): Promise<ThroughputRep> => {
    const cpuBefore = await cpuSnapshot();
    const daemonsBefore = await daemonCpuSeconds(running.path);
    const started = performance.now();
    const sample = await iperfTcp(running.client, running.address, streams, seconds);
    // CPU is sampled over the whole run, bytes only over the measured part (slow start omitted):
    // the CPU rate of the run times the measured seconds is what those bytes cost.
    const share = Math.min(1, sample.seconds / ((performance.now() - started) / 1000));
    const cpu = cpuSecondsBetween(cpuBefore, await cpuSnapshot());
    const daemonsAfter = await daemonCpuSeconds(running.path);
    return {
      ...sample,
      machineCpuSeconds: share * cpu.perCore.reduce((sum, value) => sum + value, 0),
      daemonCpuSeconds: daemonsBefore === undefined || daemonsAfter === undefined ? undefined : share * (daemonsAfter - daemonsBefore),
      perCoreCpuSeconds: cpu.perCore.map((value) => share * value),
      softirqCpuSeconds: share * cpu.softirq,
    };
  };
  try {
    return await once();
  } catch {
    await sleep(1500);
    return once();
  }
}

/** Runs one measure of a rep; a failure is recorded in the rep, not thrown. */
async function attempt<T>(rep: BenchRep, what: string, measure: () => Promise<T>): Promise<T | undefined> {
  try {
    return await measure();
  } catch (error) {
    const line = `${what}: ${errorMessage(error).split("\n")[0]}`;
    if (error instanceof ToolLimitationError) (rep.notMeasured ??= []).push(line);
    else rep.errors.push(line);
    return undefined;
  }
}

async function measureRep(running: Running, settings: BenchSettings, show: (text: string) => void): Promise<BenchRep> {
  const seconds = settings.duration;
  const rep: BenchRep = { errors: [] };
  const { client, address } = running;
  const pings = Math.max(20, Math.round(seconds / PING_INTERVAL_SECONDS));

  show("TCP 1 stream");
  rep.tcp1 = await attempt(rep, "TCP 1 stream", () => throughputRun(running, 1, seconds));
  await sleep(300);
  show(`TCP 1 stream ${rep.tcp1?.gbps.toFixed(2) ?? "failed"} Gb/s; TCP 4 streams`);
  rep.tcp4 = await attempt(rep, "TCP 4 streams", () => throughputRun(running, 4, seconds));
  await sleep(300);
  show(`TCP 4 streams ${rep.tcp4?.gbps.toFixed(2) ?? "failed"} Gb/s; idle RTT`);
  rep.idleRttUs = await attempt(rep, "idle RTT", () => pingRtt(client, address, pings, PING_INTERVAL_SECONDS));
  show(`idle RTT ${rep.idleRttUs?.toFixed(0) ?? "failed"} µs; loaded RTT`);
  rep.loadedRttUs = await attempt(rep, "loaded RTT", async () => {
    const stream = iperfTcp(client, address, 1, seconds + 1);
    stream.catch(() => undefined); // Judged below, after the ping.
    await sleep(700); // Past slow start before the first echo.
    const rtt = await pingRtt(client, address, Math.max(20, Math.round((seconds - 0.5) / PING_INTERVAL_SECONDS)), PING_INTERVAL_SECONDS);
    await stream;
    return rtt;
  });
  await sleep(300);
  show(`loaded RTT ${rep.loadedRttUs?.toFixed(0) ?? "failed"} µs; request/response`);
  rep.requestsPerSecond = await attempt(rep, "TCP RR", () => sockperfPingPong(client, address, seconds));
  show(`RR ${rep.requestsPerSecond?.toFixed(0) ?? "failed"}/s; UDP 64 B`);
  const udp = await attempt(rep, "UDP 64 B", () => iperfUdpSmall(client, address, seconds));
  rep.udpPacketsPerSecond = udp?.packetsPerSecond;
  rep.udpLossPercent = udp?.lossPercent;
  const rss = (await Promise.all(running.path.daemons.map(({ pid }) => rssMiB(pid)))).filter((value): value is number => value !== undefined);
  rep.daemonRssMiB = rss.length > 0 ? Math.max(...rss) : undefined;
  await sleep(300);
  return rep;
}

export interface RunOptions {
  progress: Progress;
  /** Where the labs go; default the system's temporary directory. */
  workDir?: string;
}

export async function measurePath(path: BenchPath, settings: BenchSettings, options: RunOptions): Promise<PathResult> {
  const name = uniquePrefix("wb").slice(0, -1);
  const labDir = join(options.workDir ?? tmpdir(), `weft-bench-${name}`);
  const result: PathResult = { id: path.id, label: path.label, lab: { name, dir: labDir }, daemons: path.daemons, reps: [], load: [os.loadavg()[0] ?? 0, 0] };
  const progress = options.progress;
  let running: Running | undefined;
  let prepared: PreparedPath | undefined;
  const cpusets = new Map<string, Cpuset>();
  const started = performance.now();
  try {
    progress.update(`${path.id}: building a lab (${name}-*)`);
    const lab = await buildLab({ ...path.lab, name, labDir, internet: false });
    progress.update(`${path.id}: preparing`);
    prepared = await path.prepare(lab);
    if (settings.cpu === "pinned") {
      await pinHosts(lab, prepared, cpusets);
      result.cores = Object.fromEntries([...cpusets].map(([host, cpuset]) => [host, cpuset.cpus]));
    }
    if (settings.link) {
      for (const host of lab.hosts) await shapeLink(host.namespace, host.state.underlayDevice, settings.link.bitsPerSecond);
    }
    result.mtu = prepared.mtu;
    const base = {
      lab,
      path: prepared,
      cpusets,
      client: { namespace: prepared.client.namespace, cpuset: cpusets.get(prepared.client.host) },
      server: { namespace: prepared.server.namespace, cpuset: cpusets.get(prepared.server.host) },
      address: prepared.server.address,
    };
    running = { ...base, servers: await startServers(base, labDir) };
    await pingRtt(running.client, running.address, 5, 0.05); // Warm: ARP, routes, first-packet paths.
    result.setupSeconds = (performance.now() - started) / 1000;
    for (let index = 1; index <= settings.reps; index++) {
      const rep = await measureRep(running, settings, (text) => progress.update(`${path.id} rep ${index}/${settings.reps}: ${text}`));
      result.reps.push(rep);
    }
  } catch (error) {
    result.error = errorMessage(error).split("\n")[0];
  } finally {
    if (running) await terminatePids(running.servers, 2000);
    await prepared?.cleanup?.().catch(() => undefined);
    await teardownLab({ name, labDir }).catch(() => undefined);
    for (const cpuset of cpusets.values()) await removeCpuset(cpuset).catch(() => undefined);
    await rm(labDir, { recursive: true, force: true });
    result.load[1] = os.loadavg()[0] ?? 0;
  }
  progress.note(result.error === undefined ? `${path.id}: done` : `${path.id}: FAILED: ${result.error}`);
  return result;
}
