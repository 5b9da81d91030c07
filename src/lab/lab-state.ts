import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../errors/error-message.js";

/**
 * The lab state file (`<labDir>/state.json`): everything a later `weft lab …` command needs
 * to find what `lab up` built — namespaces, PIDs, addresses — without guessing.
 * `lab down` also works without it (by namespace name), so a lost file never strands a lab.
 */
export interface LabState {
  version: 1;
  /** Lab name; every namespace is named `<name>-<role>`. */
  name: string;
  labDir: string;
  createdAt: string;
  backend: string;
  /** The network config JSON written to etcd (undefined when no daemons run). */
  networkConfig?: Record<string, unknown>;
  daemons: "weft" | "none";
  ipMasq: boolean;
  /** `cidrV6`: the IPv6 underlay of a dual-stack lab (`lab up --ipv6`), beside the IPv4 one. */
  underlay: { namespace: string; bridge: string; cidr: string; cidrV6?: string; mtu: number };
  etcd: { namespace: string; address: string; endpoint: string; pid?: number; dataDir: string; logFile: string };
  internet?: { namespace: string; address: string };
  /** Set when the lab runs a real dockerd per host (`lab up --docker`); see docker-plan.ts. */
  docker?: LabDockerState;
  hosts: LabHostState[];
  containers: LabContainerState[];
}

export interface LabHostState {
  /** Short name used on the command line: h1, h2, … */
  name: string;
  namespace: string;
  /** The host's underlay interface (inside its namespace) and address. */
  underlayDevice: string;
  underlayAddress: string;
  /** Dual-stack labs: the underlay interface's IPv6 address (no prefix). */
  underlayAddressV6?: string;
  dir: string;
  subnetFile: string;
  stateDir: string;
  logFile: string;
  healthzPort: number;
  daemonPid?: number;
  /** Size of `logFile` when the daemon was started: the log is appended to, older runs' lines come before. */
  daemonLogOffset?: number;
  /** From subnet.env once known: FLANNEL_SUBNET (the docker0 address with prefix) and FLANNEL_MTU. */
  bridgeAddress?: string;
  /** From subnet.env: FLANNEL_IPV6_SUBNET (docker0's IPv6 address with prefix), dual-stack labs only. */
  bridgeAddressV6?: string;
  subnet?: string;
  mtu?: number;
  /** This host's dockerd (only in a lab with `docker`). */
  dockerd?: LabDockerdState;
}

/**
 * How the lab's containers get their addresses from subnet.env:
 *   - "bip": dockerd --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU (flannel's Docker drop-in), containers on docker0;
 *   - "network": docker0 left alone, `docker network create --subnet … -o com.docker.network.driver.mtu=…`
 *     (flannel's alternative recipe), containers attached to that network.
 */
export type LabDockerMode = "bip" | "network";

export interface LabDockerState {
  mode: LabDockerMode;
  /** Repository:tag of the locally built busybox image, imported into every dockerd. */
  image: string;
  /** The image's tar (built once per lab, no registry). */
  imageTar: string;
  /** Name of the Docker network in mode "network". */
  network?: string;
  /**
   * Whether dockerd gets --ip6tables (with --experimental) when the host has IPv6: true unless
   * the lab was brought up with --no-docker-ip6tables (exactly `weft docker-opts`' flags). Absent
   * in state files written before it existed: true.
   */
  ip6tables?: boolean;
}

/** Everything of one dockerd lives under `dir` (`<labDir>/hN/docker`). */
export interface LabDockerdState {
  dir: string;
  /** --config-file (written by the lab: keeps /etc/docker/daemon.json and key.json out of it). */
  configFile: string;
  dataRoot: string;
  execRoot: string;
  pidFile: string;
  /** --host=unix://<socket> */
  socket: string;
  logFile: string;
  /** --cgroup-parent, so the lab's container cgroups are told apart from any other dockerd's. */
  cgroupParent: string;
  pid?: number;
  /** Size of `logFile` when this dockerd was started. */
  logOffset?: number;
  /** The arguments it was started with (a restart with the same subnet keeps it running). */
  args?: string[];
}

export interface LabContainerState {
  /** h1c1, h1c2, … */
  name: string;
  host: string;
  namespace: string;
  /** Host-side veth name in the host namespace (the container side is always eth0); none for Docker containers. */
  hostVeth?: string;
  /** A Docker container: its ID and init PID; `namespace` is its network namespace, attached by name. */
  docker?: { id: string; pid: number };
  address?: string;
  prefixLength?: number;
  /** Dual-stack labs: the container's IPv6 address in the host's IPv6 subnet, and its prefix. */
  addressV6?: string;
  prefixLengthV6?: number;
  mtu?: number;
}

export const STATE_FILE = "state.json";

/** The lab name when --name is not given. */
export const DEFAULT_LAB_NAME = "weft";

/** Default lab dir: /run is tmpfs, so a reboot (which also drops the namespaces) clears it too. */
export function defaultLabDir(name: string): string {
  return join("/run/weft-lab", name);
}

export async function writeLabState(state: LabState): Promise<void> {
  await mkdir(state.labDir, { recursive: true });
  const path = join(state.labDir, STATE_FILE);
  // Unique temp name: concurrent writers (daemons coming up in parallel) must not share one.
  const temp = `${path}.${process.pid}.${Math.random().toString(16).slice(2)}.tmp`;
  await writeFile(temp, JSON.stringify(state, null, 2) + "\n");
  await rename(temp, path);
}

/** Reads a lab's state; undefined when the lab dir or file does not exist. */
export async function readLabState(labDir: string): Promise<LabState | undefined> {
  const path = join(labDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`lab state ${path}: cannot read: ${errorMessage(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`lab state ${path}: not valid JSON (${errorMessage(error)}); run \`weft lab down --name <name>\` to clean up by name`);
  }
  if (typeof parsed !== "object" || parsed === null || (parsed as { version?: unknown }).version !== 1) {
    throw new Error(`lab state ${path}: unknown format (expected version 1); run \`weft lab down\` to clean up by name`);
  }
  return parsed as LabState;
}
