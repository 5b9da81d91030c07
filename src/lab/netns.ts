import { randomBytes } from "node:crypto";
import { CommandFailedError } from "../process/command-errors.js";
import { terminatePids } from "../process/pids.js";
import { runCommand, type CommandOptions, type CommandResult } from "../process/run-command.js";

/**
 * Linux network-namespace primitives for the lab and the tests: run a command inside a
 * namespace, create/delete namespaces, veth pairs, bridges, addresses.
 *
 * Everything shells out to iproute2 (`ip`), the tool an operator would use to inspect the
 * result. Several changes to one namespace go through one `ip -n <ns> -batch -` process,
 * because spawning is the dominant cost of building a lab.
 *
 * Nothing here touches the root namespace's addresses or routes: veth pairs are created with
 * both ends placed directly into their namespaces (`ip link add ... netns A type veth peer ... netns B`).
 */

/** Runs a command inside a network namespace (`ip netns exec`); the runner's contract (src/process/run-command.ts). */
export function execInNamespace(
  namespace: string,
  command: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  return runCommand(command, args, { ...options, netns: namespace });
}

/**
 * Applies several `ip` commands (one per line, without the leading `ip`) in one process.
 * `namespace` undefined means the root namespace (only use it for commands that create
 * objects directly inside other namespaces).
 */
export async function ipBatch(namespace: string | undefined, lines: readonly string[], options: CommandOptions = {}): Promise<void> {
  if (lines.length === 0) return;
  const args = namespace === undefined ? ["-batch", "-"] : ["-n", namespace, "-batch", "-"];
  try {
    await runCommand("ip", args, { ...options, input: lines.join("\n") + "\n" });
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    // ip -batch reports "Command failed -:<line>"; name the failing line so the user sees what broke.
    const lineNumber = /Command failed -:(\d+)/.exec(error.stderr)?.[1];
    const failed = lineNumber === undefined ? undefined : lines[Number(lineNumber) - 1];
    const where = namespace === undefined ? "root namespace" : `namespace "${namespace}"`;
    throw error.withHint(failed === undefined ? `batch in ${where}` : `failing line in ${where}: "ip ${failed}"`);
  }
}

// ---- names ----------------------------------------------------------------------------------

/** Linux limits interface names to 15 bytes (IFNAMSIZ - 1). */
export const MAX_INTERFACE_NAME = 15;

/** Throws if `name` cannot be a Linux interface name, naming the offending value. */
export function assertInterfaceName(name: string): void {
  if (name.length === 0 || name.length > MAX_INTERFACE_NAME || /[\s/:]/.test(name) || name === "." || name === "..") {
    throw new Error(
      `interface name "${name}" is invalid: it must be 1..${MAX_INTERFACE_NAME} characters without spaces, "/" or ":"; use a shorter lab prefix`,
    );
  }
}

/** Throws if `name` cannot be a network-namespace name (a file name under /run/netns). */
export function assertNamespaceName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    throw new Error(`network namespace name "${name}" is invalid: use letters, digits, "_", "." and "-" (max 63)`);
  }
}

/** A fresh prefix such as "wt3fa9-" so concurrent tests and labs never collide. */
export function uniquePrefix(stem = "wt"): string {
  return `${stem}${randomBytes(2).toString("hex")}-`;
}

// ---- namespaces -----------------------------------------------------------------------------

export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await runCommand("ip", ["netns", "list"]);
  // Lines look like "name (id: 3)" or just "name".
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.length > 0);
}

export async function namespaceExists(name: string): Promise<boolean> {
  return (await listNamespaces()).includes(name);
}

/** Creates a namespace with loopback up. Fails if it already exists (a leftover: run the cleanup). */
export async function createNamespace(name: string): Promise<void> {
  assertNamespaceName(name);
  await runCommand("ip", ["netns", "add", name], {
    hint: `if "${name}" is left over from an earlier run, remove it with \`ip netns delete ${name}\` or \`weft lab down\``,
  });
  await ipBatch(name, ["link set lo up"]);
}

/** PIDs of processes whose network namespace is `name` (`ip netns pids`). */
export async function namespacePids(name: string): Promise<number[]> {
  const { stdout } = await runCommand("ip", ["netns", "pids", name], { allowFailure: true });
  return stdout
    .split(/\s+/)
    .filter((text) => /^\d+$/.test(text))
    .map(Number);
}

/**
 * Kills every process inside the namespace (SIGTERM, then SIGKILL after `graceMs`), by PID.
 * Only call this for namespaces this program created: the namespace is the ownership proof.
 */
export async function killNamespaceProcesses(name: string, graceMs = 3000): Promise<void> {
  const pids = await namespacePids(name);
  await terminatePids(pids, graceMs);
}

/** Deletes a namespace, its processes first; missing namespaces are fine (idempotent cleanup). */
export async function deleteNamespace(name: string, graceMs = 3000): Promise<void> {
  if (!(await namespaceExists(name))) return;
  await killNamespaceProcesses(name, graceMs);
  await runCommand("ip", ["netns", "delete", name], { allowFailure: true });
}

// ---- links and addresses --------------------------------------------------------------------

export interface VethEnd {
  /** Interface name inside its namespace. */
  name: string;
  namespace: string;
  /** "a.b.c.d/len" addresses to put on this end. */
  addresses?: readonly string[];
  mtu?: number;
  /** Enslave this end to a bridge that already exists in the same namespace. */
  master?: string;
}

/**
 * Creates a veth pair with each end directly in its namespace (never visible in the root
 * namespace), then addresses the ends and brings them up.
 */
export async function createVethPair(a: VethEnd, b: VethEnd): Promise<void> {
  assertInterfaceName(a.name);
  assertInterfaceName(b.name);
  await ipBatch(undefined, [
    `link add name ${a.name} netns ${a.namespace} type veth peer name ${b.name} netns ${b.namespace}`,
  ], { hint: `creating veth ${a.name}@${a.namespace} <-> ${b.name}@${b.namespace}` });
  if (a.namespace === b.namespace) {
    await ipBatch(a.namespace, [...configureLinkLines(a), ...configureLinkLines(b)]);
  } else {
    await Promise.all([ipBatch(a.namespace, configureLinkLines(a)), ipBatch(b.namespace, configureLinkLines(b))]);
  }
}

/** The `ip` lines that set MTU, master, addresses and up on one link (for batching). */
export function configureLinkLines(link: Omit<VethEnd, "namespace">): string[] {
  const lines: string[] = [];
  if (link.mtu !== undefined) lines.push(`link set dev ${link.name} mtu ${link.mtu}`);
  if (link.master !== undefined) lines.push(`link set dev ${link.name} master ${link.master}`);
  for (const address of link.addresses ?? []) lines.push(`address add ${address} dev ${link.name}`);
  lines.push(`link set dev ${link.name} up`);
  return lines;
}

export interface BridgeOptions {
  addresses?: readonly string[];
  mtu?: number;
}

/** The `ip` lines creating a bridge (no STP, so ports forward at once) with addresses, up. */
export function createBridgeLines(name: string, options: BridgeOptions = {}): string[] {
  assertInterfaceName(name);
  return [
    `link add name ${name} type bridge stp_state 0 forward_delay 0`,
    ...configureLinkLines({ name, ...options }),
  ];
}

export async function createBridge(namespace: string, name: string, options: BridgeOptions = {}): Promise<void> {
  await ipBatch(namespace, createBridgeLines(name, options));
}

export async function addAddress(namespace: string, device: string, cidr: string): Promise<void> {
  await ipBatch(namespace, [`address add ${cidr} dev ${device}`]);
}

/** Sets sysctls inside a namespace in one process, e.g. {"net.ipv4.ip_forward": "1"}. */
export async function setSysctls(namespace: string, values: Readonly<Record<string, string>>): Promise<void> {
  const pairs = Object.entries(values).map(([key, value]) => `${key}=${value}`);
  if (pairs.length === 0) return;
  await execInNamespace(namespace, "sysctl", ["-q", "-w", ...pairs]);
}

/** `ip -j` output of links in a namespace (for tests and status). */
export interface LinkInfo {
  ifname: string;
  mtu: number;
  operstate: string;
  master?: string;
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export async function listLinks(namespace: string): Promise<LinkInfo[]> {
  const { stdout } = await runCommand("ip", ["-n", namespace, "-j", "address", "show"]);
  return JSON.parse(stdout) as LinkInfo[];
}
