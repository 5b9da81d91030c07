import { existsSync } from "node:fs";
import { mkdir, open, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readSubnetEnv, type SubnetEnv } from "../host/subnet-env.js";
import { formatIpv4 } from "../net/ipv4.js";
import type { LabHostState, LabState } from "./lab-state.js";
import type { DockerBridgeConfig } from "./topology-build.js";
import { execInNamespace } from "./netns.js";
import { sleep } from "../async/sleep.js";
import { runCommand } from "../process/run-command.js";
import { isAlive, terminatePids } from "../process/pids.js";
import { DAEMON_NODE_FLAGS } from "../process/daemon-node-flags.js";
import { spawnDetachedInNamespace } from "../process/detached.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * Starting, probing and stopping the weft daemon of one lab host. The daemon runs detached
 * inside the host namespace (`ip netns exec <ns> node dist/cli.js run …`) so `lab up` can return;
 * its PID is the only handle later commands have, so it goes into the lab state.
 */

/** dist/cli.js of this package: src/lab and dist/lab are both two levels below the root. */
export function weftCliPath(): string {
  return fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
}

export function daemonArgs(state: LabState, host: LabHostState, extraArgs: readonly string[] = []): string[] {
  return [
    "run",
    `--etcd-endpoints=${state.etcd.endpoint}`,
    `--iface=${host.underlayDevice}`,
    `--subnet-file=${host.subnetFile}`,
    `--state-dir=${host.stateDir}`,
    "--healthz-ip=127.0.0.1",
    `--healthz-port=${host.healthzPort}`,
    ...(state.ipMasq ? ["--ip-masq"] : []),
    // dockerd starts after weft and creates DOCKER-USER: weft hooks its forward rules in at the next check.
    ...(state.docker ? ["--iptables-resync=1"] : []),
    ...extraArgs,
  ];
}

/** The host's own /run/wireguard, kept in its state dir (wg's UAPI sockets are named after the device: flannel-wg on every host). */
export function hostWireguardRunDir(host: LabHostState): string {
  return join(host.stateDir, "run-wireguard");
}

/**
 * The argv that runs `program args` in the host's namespace with the host's own /run/wireguard:
 * `ip netns exec` gives the command a private mount namespace, where the host's directory is
 * bound over /run/wireguard. What the command starts (weft's wireguard-go) inherits it; a later
 * command bound the same way reaches the same sockets.
 */
export async function inHostRunDir(host: LabHostState, program: string, args: readonly string[]): Promise<[string, string[]]> {
  const runDir = hostWireguardRunDir(host);
  await mkdir(runDir, { recursive: true });
  await mkdir("/run/wireguard", { recursive: true });
  return ["sh", ["-c", 'mount --bind "$1" /run/wireguard && shift && exec "$@"', "sh", runDir, program, ...args]];
}

/** Starts the host's daemon; returns its PID (also stored in `host.daemonPid`). */
export async function startDaemon(
  state: LabState,
  host: LabHostState,
  extraArgs: readonly string[] = [],
  extraEnv: Readonly<Record<string, string>> = {},
): Promise<number> {
  if (host.daemonPid !== undefined && isAlive(host.daemonPid)) {
    throw new Error(`host ${host.name}: its weft daemon is already running (PID ${host.daemonPid}); stop it first`);
  }
  const cli = weftCliPath();
  if (!existsSync(cli)) {
    throw new Error(`${cli} does not exist: build weft first (\`npm run build:ts\`)`);
  }
  await mkdir(host.stateDir, { recursive: true });
  host.daemonLogOffset = await fileSize(host.logFile);
  // Every lab host is a separate machine: its own WireGuard key, not the shared /run/flannel/wgkey,
  // and its own /run/wireguard.
  const env = { ...process.env, WIREGUARD_KEY_FILE: join(host.stateDir, "wgkey"), ...extraEnv };
  const [program, args] = await inHostRunDir(host, process.execPath, [...DAEMON_NODE_FLAGS, cli, ...daemonArgs(state, host, extraArgs)]);
  const pid = spawnDetachedInNamespace(host.namespace, program, args, host.logFile, env);
  host.daemonPid = pid;
  return pid;
}

/** Stops the daemon by its recorded PID (SIGTERM, SIGKILL after `graceMs`). */
export async function stopDaemon(host: LabHostState, graceMs = 5000): Promise<void> {
  if (host.daemonPid !== undefined) await terminatePids([host.daemonPid], graceMs);
  host.daemonPid = undefined;
}

/** Whether curl can be used for probes: it starts ~20x faster than a node process. */
let curlAvailable: boolean | undefined;

/** Asks the daemon's /readyz from inside its namespace; true only for HTTP 2xx. */
export async function probeReadyz(host: LabHostState): Promise<boolean> {
  const url = `http://127.0.0.1:${host.healthzPort}/readyz`;
  if (curlAvailable === undefined) curlAvailable = (await runCommand("curl", ["--version"], { allowFailure: true }).catch(() => undefined))?.exitCode === 0;
  if (curlAvailable) {
    const result = await execInNamespace(host.namespace, "curl", ["-sf", "-m", "1", "-o", "/dev/null", url], { allowFailure: true, timeoutMs: 5000 });
    return result.exitCode === 0;
  }
  const script = `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(1000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(2))`;
  const result = await execInNamespace(host.namespace, process.execPath, ["-e", script], { allowFailure: true, timeoutMs: 5000 });
  return result.exitCode === 0;
}

/**
 * Waits until the daemon has written subnet.env and answers /readyz. Fails early, with the
 * tail of its log, when the daemon exits.
 */
export async function waitDaemonReady(host: LabHostState, timeoutMs = 30_000): Promise<SubnetEnv> {
  const deadline = Date.now() + timeoutMs;
  let env: SubnetEnv | undefined;
  let lastError = "";
  while (Date.now() < deadline) {
    if (host.daemonPid === undefined || !isAlive(host.daemonPid)) {
      throw new Error(`host ${host.name}: weft daemon (PID ${host.daemonPid ?? "none"}) exited; last log lines from ${host.logFile}:\n${await logTail(host.logFile, host.daemonLogOffset)}`);
    }
    // The CLI reports a fatal error as a "weft: …" line; the process may linger a while after it.
    if (/^weft: /m.test(await readFrom(host.logFile, host.daemonLogOffset))) {
      throw new Error(`host ${host.name}: weft daemon (PID ${host.daemonPid}) failed; last log lines from ${host.logFile}:\n${await logTail(host.logFile, host.daemonLogOffset)}`);
    }
    try {
      env = env && hasLease(env) ? env : await readSubnetEnv(host.subnetFile);
    } catch (error) {
      lastError = errorMessage(error); // A half-read file during the daemon's write; try again.
    }
    if (env && hasLease(env) && (await probeReadyz(host))) return env;
    await sleep(50);
  }
  const waitingFor = env && hasLease(env) ? `/readyz on 127.0.0.1:${host.healthzPort} in ${host.namespace}` : `${host.subnetFile}`;
  throw new Error(
    `host ${host.name}: weft daemon not ready after ${timeoutMs / 1000} s (waiting for ${waitingFor})${lastError ? `; ${lastError}` : ""}; ` +
      `last log lines from ${host.logFile}:\n${await logTail(host.logFile, host.daemonLogOffset)}`,
  );
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** The log from byte `offset` on (what this run of the daemon wrote); "" when there is none. */
async function readFrom(path: string, offset = 0): Promise<string> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch {
    return "";
  }
  try {
    const size = (await handle.stat()).size;
    if (size <= offset) return "";
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}

/** The last lines written since byte `offset` (the start of this run). */
export async function logTail(path: string, offset = 0, lines = 15): Promise<string> {
  const text = await readFrom(path, offset);
  return text.trim() === "" ? "(nothing logged)" : text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** The daemon wrote its lease: a subnet (FLANNEL_SUBNET, or FLANNEL_IPV6_SUBNET alone in an IPv6-only network) and FLANNEL_MTU. */
function hasLease(env: SubnetEnv): boolean {
  return (env.subnetAddress !== undefined || env.ipv6Subnet !== undefined) && env.mtu !== undefined;
}

/** subnet.env reduced to what docker0 needs; errors name the file and the missing key. */
export function dockerBridgeFromEnv(host: LabHostState, env: SubnetEnv): DockerBridgeConfig {
  if (!env.subnetAddress && env.ipv6Subnet === undefined) {
    throw new Error(`${host.subnetFile}: FLANNEL_SUBNET (or, IPv6-only, FLANNEL_IPV6_SUBNET) is missing; the daemon has not written a lease yet`);
  }
  if (env.mtu === undefined) throw new Error(`${host.subnetFile}: FLANNEL_MTU is missing`);
  return {
    ...(env.subnetAddress ? { bridgeAddress: `${formatIpv4(env.subnetAddress.address)}/${env.subnetAddress.prefixLength}` } : {}),
    ...(env.ipv6Subnet !== undefined ? { bridgeAddressV6: env.ipv6Subnet } : {}),
    mtu: env.mtu,
  };
}
