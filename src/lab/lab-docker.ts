import { existsSync } from "node:fs";
import { mkdir, open, readFile, rm, stat, symlink, copyFile, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { delimiter, dirname, join } from "node:path";
import { previousIpv6Subnet, previousSubnet, type SubnetEnv } from "../host/subnet-env.js";
import { errorMessage } from "../errors/error-message.js";
import { tryParseIpv4 } from "../net/ipv4.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import { spawnDetached } from "../process/detached.js";
import { isAlive, terminatePids } from "../process/pids.js";
import { runCommand, type CommandOptions, type CommandResult } from "../process/run-command.js";
import {
  CONTAINER_HTTP_PORT,
  IMAGE_APPLETS,
  containerRunArgs,
  dockerHostArgs,
  dockerNetworkCreateArgs,
  dockerFiltersIpv6,
  dockerdArgs,
  dockerdConfigText,
} from "./docker-plan.js";
import { dockerBridgeFromEnv, logTail } from "./lab-daemon.js";
import type { LabContainerState, LabDockerState, LabDockerdState, LabHostState, LabState } from "./lab-state.js";
import { unmountAllUnder } from "./mounts.js";
import { execInNamespace, listLinks } from "./netns.js";
import { waitForListener, waitUntil } from "./readiness.js";

/**
 * The side-effect half of `weft lab up --docker` (docker-plan.ts decides every argument):
 * build the busybox image once, start one dockerd per host in its namespace, run the host's
 * containers on it, and stop all of it again by PID.
 */

/** The docker CLI against one lab dockerd (the CLI runs here; it only talks to the socket). */
export function dockerCli(dockerd: Pick<LabDockerdState, "socket">, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return runCommand("docker", [...dockerHostArgs(dockerd), ...args], { timeoutMs: 60_000, ...options });
}

/** GET /_ping on the daemon's socket: true once the API answers 200. */
export function pingDockerd(socket: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const ping = request({ socketPath: socket, path: "/_ping", method: "GET", timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    ping.on("error", () => resolve(false));
    ping.on("timeout", () => {
      ping.destroy();
      resolve(false);
    });
    ping.end();
  });
}

// ---- the image ------------------------------------------------------------------------------

/** Whether an ELF file has no program interpreter (PT_INTERP), i.e. runs in an empty root file system. */
async function isStaticElf(path: string): Promise<boolean> {
  const handle = await open(path, "r");
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false; // ELF64 little-endian only.
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let index = 0; index < phnum; index++) {
      if (table.readUInt32LE(index * phentsize) === 3) return false; // PT_INTERP
    }
    return true;
  } finally {
    await handle.close();
  }
}

/** A statically linked busybox (Debian's busybox-static: /bin/busybox). */
export async function findStaticBusybox(): Promise<string> {
  const directories = [...(process.env.PATH ?? "").split(delimiter), "/bin", "/usr/bin"].filter((dir) => dir !== "");
  const candidates = [...new Set(directories.map((dir) => join(dir, "busybox")))].filter((path) => existsSync(path));
  for (const candidate of candidates) {
    if (await isStaticElf(candidate).catch(() => false)) return candidate;
  }
  throw new Error(
    candidates.length === 0
      ? "busybox is not installed: the lab's Docker image is built from it (apt-get install busybox-static)"
      : `${candidates.join(", ")} is dynamically linked and cannot run in an empty image: apt-get install busybox-static`,
  );
}

/** Builds in progress, by tar path: hosts starting their dockerd at once share one build. */
const imageBuilds = new Map<string, Promise<void>>();

/** Builds the image's tar once per lab: /bin/busybox and its applets as symlinks. No registry. */
export function buildImageTar(docker: LabDockerState): Promise<void> {
  const running = imageBuilds.get(docker.imageTar);
  if (running) return running;
  const build = buildImageTarOnce(docker).finally(() => imageBuilds.delete(docker.imageTar));
  imageBuilds.set(docker.imageTar, build);
  return build;
}

async function buildImageTarOnce(docker: LabDockerState): Promise<void> {
  if (existsSync(docker.imageTar)) return;
  const busybox = await findStaticBusybox();
  const rootfs = join(dirname(docker.imageTar), "rootfs");
  await rm(rootfs, { recursive: true, force: true });
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await mkdir(join(rootfs, "tmp"), { recursive: true });
  await copyFile(busybox, join(rootfs, "bin", "busybox"));
  await Promise.all(IMAGE_APPLETS.map((applet) => symlink("busybox", join(rootfs, "bin", applet))));
  const partial = `${docker.imageTar}.partial`;
  await runCommand("tar", ["-cf", partial, "-C", rootfs, "."], { hint: "packing the lab's busybox image" });
  await runCommand("mv", [partial, docker.imageTar]);
  await rm(rootfs, { recursive: true, force: true });
}

// ---- dockerd --------------------------------------------------------------------------------

function dockerdOf(host: LabHostState): LabDockerdState {
  if (!host.dockerd) throw new Error(`host ${host.name} has no dockerd in this lab (it was brought up without --docker)`);
  return host.dockerd;
}

async function fileSize(path: string): Promise<number> {
  return stat(path).then((s) => s.size, () => 0);
}

async function inodeOf(path: string): Promise<number | undefined> {
  return stat(path).then((s) => s.ino, () => undefined);
}

/**
 * Starts the host's dockerd in its network namespace with `nsenter --net` (not `ip netns exec`,
 * which remounts /sys in a private mount namespace: dockerd then finds no devices cgroup) and
 * waits until its socket answers /_ping. Fails early, with its log, when it exits.
 */
export async function startDockerd(state: LabState, host: LabHostState, env: SubnetEnv, timeoutMs = 60_000): Promise<void> {
  const docker = state.docker;
  if (!docker) throw new Error(`lab "${state.name}" was brought up without --docker`);
  const dockerd = dockerdOf(host);
  if (dockerd.pid !== undefined && isAlive(dockerd.pid)) {
    throw new Error(`host ${host.name}: its dockerd is already running (PID ${dockerd.pid}); stop it first`);
  }
  await mkdir(dockerd.dir, { recursive: true });
  await writeFile(dockerd.configFile, dockerdConfigText(dockerd));
  const args = dockerdArgs(dockerd, env, docker.mode, dockerFiltersIpv6(docker));
  dockerd.logOffset = await fileSize(dockerd.logFile);
  dockerd.args = args;
  dockerd.pid = spawnDetached("nsenter", [`--net=/run/netns/${host.namespace}`, "dockerd", ...args], dockerd.logFile);
  const pid = dockerd.pid;
  await waitUntil(
    `dockerd of host ${host.name} (PID ${pid}) to answer on ${dockerd.socket}`,
    async () => {
      if (!isAlive(pid)) {
        throw new Error(`host ${host.name}: dockerd (PID ${pid}) exited; last lines of ${dockerd.logFile}:\n${await logTail(dockerd.logFile, dockerd.logOffset)}`);
      }
      return pingDockerd(dockerd.socket);
    },
    { timeoutMs, intervalMs: 100 },
  ).catch(async (error: unknown) => {
    throw new Error(`${errorMessage(error)}\nlast lines of ${dockerd.logFile}:\n${await logTail(dockerd.logFile, dockerd.logOffset)}`, { cause: error });
  });
}

/** Docker's own record of a container, the fields the lab needs. */
export interface InspectedContainer {
  id: string;
  pid: number;
  /** Its address on the network ("" or absent when Docker gave it none of that family). */
  address?: string;
  prefixLength?: number;
  addressV6?: string;
  prefixLengthV6?: number;
}

/** Pure: the fields of `docker inspect <id>` the lab reads, for the container's attachment to `networkName`. */
export function inspectedContainer(json: string, networkName: string): InspectedContainer {
  const parsed: unknown = JSON.parse(json);
  const record = (Array.isArray(parsed) ? parsed[0] : parsed) as {
    Id?: unknown;
    State?: { Pid?: unknown };
    NetworkSettings?: { Networks?: Record<string, { IPAddress?: unknown; IPPrefixLen?: unknown; GlobalIPv6Address?: unknown; GlobalIPv6PrefixLen?: unknown }> };
  };
  const network = record.NetworkSettings?.Networks?.[networkName];
  const id = record.Id;
  const pid = record.State?.Pid;
  if (typeof id !== "string" || typeof pid !== "number" || pid <= 0 || network === undefined) {
    throw new Error(`docker inspect: no running container attached to network "${networkName}" in ${json.slice(0, 200)}`);
  }
  const { IPAddress, IPPrefixLen, GlobalIPv6Address, GlobalIPv6PrefixLen } = network;
  return {
    id,
    pid,
    ...(typeof IPAddress === "string" && IPAddress !== "" && typeof IPPrefixLen === "number" ? { address: IPAddress, prefixLength: IPPrefixLen } : {}),
    ...(typeof GlobalIPv6Address === "string" && GlobalIPv6Address !== "" && typeof GlobalIPv6PrefixLen === "number"
      ? { addressV6: GlobalIPv6Address, prefixLengthV6: GlobalIPv6PrefixLen }
      : {}),
  };
}

/**
 * The container's overlay addresses: the address of each family subnet.env names, which must lie
 * in the host's subnet of that family (else dockerd did not take --bip/--fixed-cidr-v6 or the
 * network's subnets, and nothing of the lab would mean anything). An IPv6-only host's container
 * also has Docker's host-local IPv4 address (172.17.0.0/16 by default): not an overlay address,
 * so it is not recorded.
 */
export function overlayAddresses(container: string, inspected: InspectedContainer, env: SubnetEnv, networkName: string): Pick<LabContainerState, "address" | "prefixLength" | "addressV6" | "prefixLengthV6"> {
  const v4 = previousSubnet(env);
  const v6 = previousIpv6Subnet(env);
  const where = `Docker container ${container} on network "${networkName}"`;
  const addresses: Pick<LabContainerState, "address" | "prefixLength" | "addressV6" | "prefixLengthV6"> = {};
  if (v4) {
    const address = inspected.address === undefined ? undefined : tryParseIpv4(inspected.address);
    if (address === undefined || !v4.containsAddress(address)) {
      throw new Error(`${where} has IPv4 address ${inspected.address ?? "none"}, not one in the host's FLANNEL_SUBNET ${v4}: dockerd did not take the subnet`);
    }
    Object.assign(addresses, { address: inspected.address, prefixLength: inspected.prefixLength });
  }
  if (v6) {
    const address = inspected.addressV6 === undefined ? undefined : tryParseIpv6(inspected.addressV6);
    if (address === undefined || !v6.containsAddress(address)) {
      throw new Error(
        `${where} has IPv6 address ${inspected.addressV6 ?? "none"}, not one in the host's FLANNEL_IPV6_SUBNET ${v6}: dockerd did not take --ipv6 --fixed-cidr-v6 (or the network's IPv6 subnet)`,
      );
    }
    Object.assign(addresses, { addressV6: formatIpv6(address), prefixLengthV6: inspected.prefixLengthV6 });
  }
  return addresses;
}

/**
 * Imports the image, creates the Docker network (mode "network"), runs the host's containers
 * and names each one's network namespace `<lab>-<container>` (`ip netns attach`), so `lab exec`,
 * `lab check` and `lab down` treat it like any lab namespace. Returns once every httpd listens.
 */
export async function startDockerContainers(state: LabState, host: LabHostState, env: SubnetEnv): Promise<void> {
  const docker = state.docker;
  if (!docker) throw new Error(`lab "${state.name}" was brought up without --docker`);
  const dockerd = dockerdOf(host);
  await dockerCli(dockerd, ["import", docker.imageTar, docker.image], { hint: `importing ${docker.imageTar} into the dockerd of ${host.name}` });
  if (docker.network !== undefined) {
    await dockerCli(dockerd, dockerNetworkCreateArgs(env, docker.network), { hint: `host ${host.name}: flannel's alternative recipe` });
  }
  const networkName = docker.network ?? "bridge";
  const containers = state.containers.filter((container) => container.host === host.name);
  await Promise.all(containers.map((container) => runContainer(dockerd, container, docker, networkName, env)));
  const { bridgeAddress, bridgeAddressV6 } = dockerBridgeFromEnv(host, env);
  host.bridgeAddress = bridgeAddress;
  host.bridgeAddressV6 = bridgeAddressV6;
  host.subnet = (previousSubnet(env) ?? previousIpv6Subnet(env))?.toString();
  host.mtu = env.mtu;
}

async function runContainer(dockerd: LabDockerdState, container: LabContainerState, docker: LabDockerState, networkName: string, env: SubnetEnv): Promise<void> {
  await dockerCli(dockerd, ["rm", "--force", container.name], { allowFailure: true });
  const run = await dockerCli(dockerd, containerRunArgs(container.name, docker.image, docker.network));
  const id = run.stdout.trim();
  const inspected = inspectedContainer((await dockerCli(dockerd, ["inspect", id])).stdout, networkName);
  const addresses = overlayAddresses(container.name, inspected, env, networkName);
  await runCommand("ip", ["netns", "delete", container.namespace], { allowFailure: true });
  await runCommand("ip", ["netns", "attach", container.namespace, String(inspected.pid)], {
    hint: `naming the network namespace of Docker container ${container.name}`,
  });
  const eth0 = (await listLinks(container.namespace)).find((link) => link.ifname === "eth0");
  container.docker = { id: inspected.id, pid: inspected.pid };
  Object.assign(container, { address: undefined, prefixLength: undefined, addressV6: undefined, prefixLengthV6: undefined }, addresses);
  container.mtu = eth0?.mtu;
  await waitForListener(container.namespace, "tcp", CONTAINER_HTTP_PORT, { timeoutMs: 10_000 });
}

/**
 * Stops the host's dockerd: its containers first (`docker rm --force`, quick), then dockerd by
 * PID (it stops its containerd), then that containerd by PID if it outlived dockerd, then the
 * mounts under the host's docker dir. The containers' namespace names are removed.
 */
export async function stopDockerd(state: LabState, host: LabHostState, graceMs = 15_000): Promise<void> {
  const dockerd = host.dockerd;
  if (!dockerd) return;
  const containers = state.containers.filter((container) => container.host === host.name);
  if (dockerd.pid !== undefined && isAlive(dockerd.pid)) {
    const names = containers.filter((container) => container.docker !== undefined).map((container) => container.name);
    if (names.length > 0) await dockerCli(dockerd, ["rm", "--force", ...names], { allowFailure: true, timeoutMs: 30_000 });
    await terminatePids([dockerd.pid], graceMs);
  }
  // Its containerd normally ends with it; one that outlived a killed dockerd is stopped, if it is still in this host's namespace.
  const containerdPid = Number((await readFile(join(dockerd.execRoot, "containerd", "containerd.pid"), "utf8").catch(() => "")).trim());
  if (Number.isInteger(containerdPid) && containerdPid > 0 && (await inodeOf(`/proc/${containerdPid}/ns/net`)) === (await inodeOf(`/run/netns/${host.namespace}`))) {
    await terminatePids([containerdPid], 5000);
  }
  dockerd.pid = undefined;
  for (const container of containers) {
    if (container.docker === undefined) continue;
    await runCommand("ip", ["netns", "delete", container.namespace], { allowFailure: true });
    container.docker = undefined;
    container.address = undefined;
    container.addressV6 = undefined;
  }
  const left = await unmountAllUnder(dockerd.dir);
  if (left.length > 0) throw new Error(`host ${host.name}: mounts left under ${dockerd.dir} after dockerd stopped: ${left.join(", ")}`);
}

/**
 * Where weft's WEFT-FWD jump sits in the host's iptables (4) or ip6tables (6) filter table: in
 * Docker's DOCKER-USER chain, or at the top of FORWARD when the table has no DOCKER-USER (dockerd
 * 20.10 with --ip6tables makes none for IPv6; later versions do); undefined when it is not where
 * it belongs. The jump is what lets new connections reach containers under FORWARD policy DROP.
 */
export async function forwardRulesHook(host: LabHostState, family: 4 | 6 = 4): Promise<"DOCKER-USER" | "FORWARD" | undefined> {
  const tool = family === 4 ? "iptables" : "ip6tables";
  const result = await execInNamespace(host.namespace, tool, ["-w", "5", "-S"], { allowFailure: true, timeoutMs: 10_000 });
  if (result.exitCode !== 0) return undefined;
  const jumpIn = (chain: string) => new RegExp(`^-A ${chain} .*-j WEFT-FWD\\b`, "m").test(result.stdout);
  if (/^-N DOCKER-USER$/m.test(result.stdout)) return jumpIn("DOCKER-USER") ? "DOCKER-USER" : undefined;
  return jumpIn("FORWARD") ? "FORWARD" : undefined;
}

/** Whether weft's forward rules are hooked into Docker's DOCKER-USER chain of the host (IPv4), or its ip6tables equivalent. */
export async function forwardRulesHooked(host: LabHostState, family: 4 | 6 = 4): Promise<boolean> {
  return (await forwardRulesHook(host, family)) !== undefined;
}

/**
 * Waits until weft has put its WEFT-FWD jump into the DOCKER-USER chain dockerd created, for each
 * family the host's subnet.env has and dockerd filters (IPv6 only with --ip6tables: then its
 * ip6tables FORWARD policy is DROP).
 */
export async function waitForwardRulesHooked(host: LabHostState, env: SubnetEnv, filtersIpv6 = true, timeoutMs = 20_000): Promise<void> {
  const families = [...(env.subnetAddress ? [4 as const] : []), ...(env.ipv6Subnet !== undefined && filtersIpv6 ? [6 as const] : [])];
  for (const family of families) {
    const tool = family === 4 ? "iptables" : "ip6tables";
    await waitUntil(`weft's WEFT-FWD jump in the ${tool} DOCKER-USER (or FORWARD) chain of ${host.namespace} (weft run --iptables-forward-rules)`, () => forwardRulesHooked(host, family), {
      timeoutMs,
      intervalMs: 100,
    });
  }
}
