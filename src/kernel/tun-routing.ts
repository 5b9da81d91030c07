import type { Ipv4Subnet } from "../net/ipv4.js";
import { formatIpv6, type Ipv6Subnet } from "../net/ipv6.js";
import { CommandFailedError, CommandTimedOutError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

const IP_TIMEOUT_MS = 10_000;

/**
 * Addresses a weft TUN device as flannel addresses flannel0 (flannel-compat §5): the lease's network
 * address as a /32 (no broadcast routes), and one route for the whole flannel Network through
 * the device; the local subnet on docker0 is more specific and wins. Runs `ip` (not on the hot
 * path); `netns` runs it in that namespace (`ip -n`). `ipv6` (dual-stack userspace vxlan) does
 * the same for IPv6: the own IPv6 subnet's network address as a /128 and the IPv6 Network
 * through the device, as flanneld addresses flannel-v6.<VNI>.
 */
export interface TunIpv6Routing {
  ownSubnet: Ipv6Subnet;
  network: Ipv6Subnet;
}

export async function addressTun(
  device: string,
  ownSubnet: Ipv4Subnet,
  network: Ipv4Subnet,
  netns?: string,
  ipv6?: TunIpv6Routing,
): Promise<void> {
  await ensureNoQueueDiscipline(device, netns);
  const address = `${ownSubnet.toString().split("/")[0]}/32`;
  // The new address first, then any other (an old lease's /32): removing a device's last IPv4
  // address flushes every route through it, which on a device resumed after a restart
  // (docs/dataplane.md "Restarts") would cut the traffic that is still flowing.
  await deviceCommand("ip", netns, ["addr", "replace", address, "dev", device], device);
  for (const other of (await readTunRouting(device, netns)).addresses) {
    if (other !== address && !other.includes(":")) await deviceCommand("ip", netns, ["addr", "del", other, "dev", device], device);
  }
  await deviceCommand("ip", netns, ["route", "replace", network.toString(), "dev", device], device);
  if (!ipv6) return;
  // nodad: the address is ours alone (a TUN has no neighbours), usable at once.
  await deviceCommand("ip", netns, ["-6", "addr", "replace", `${formatIpv6(ipv6.ownSubnet.network)}/128`, "dev", device, "nodad"], device);
  await deviceCommand("ip", netns, ["-6", "route", "replace", ipv6.network.toString(), "dev", device], device);
}

/**
 * "a.b.c.d/len" of each address `ip -j addr show` listed. With a scope filter iproute2 still
 * prints an entry (lifetimes only, no "local") for each filtered-out address, e.g. the
 * link-local one a device keeps now that its addresses are no longer flushed: skipped.
 */
function addressesOf(links: readonly { addr_info?: { local?: string; prefixlen?: number }[] }[]): string[] {
  return (links[0]?.addr_info ?? []).filter((info) => info.local !== undefined).map((info) => `${info.local}/${info.prefixlen}`);
}

/**
 * Gives the TUN the `noqueue` discipline (kernel vxlan and veth devices have it by default), once:
 * a TUN never stops its queue (it drops at its own ring, txqueuelen long, when that is full), so
 * a qdisc in front of it holds nothing worth holding, and every txqueuelen change (the hand-over
 * lengthens the ring and puts it back) deactivates the device's qdiscs for a moment: what the
 * default pfifo_fast held then is dropped. Measured with a reader on a TUN and a 5 kpps stream
 * into it, 200 changes: 133 packets dropped with pfifo_fast, 57 with fq_codel, 1 with noqueue
 * (the lost echo of the hand-over tests, `flannel0 tx dropped +1`). Replacing a qdisc
 * deactivates too: done only when it is not noqueue already.
 */
export async function ensureNoQueueDiscipline(device: string, netns?: string): Promise<void> {
  const prefix = netns === undefined ? [] : ["-n", netns];
  const shown = await runCommand("tc", [...prefix, "-j", "qdisc", "show", "dev", device], { timeoutMs: IP_TIMEOUT_MS });
  const root = (JSON.parse(shown.stdout || "[]") as { kind?: string; root?: boolean }[]).find((qdisc) => qdisc.root);
  if (root?.kind === "noqueue") return;
  await deviceCommand("tc", netns, ["qdisc", "replace", "dev", device, "root", "noqueue"], device);
}

/** The device's transmit queue length (`txqueuelen`: for a TUN, the packets it holds for its reader). */
export async function readTxQueueLength(device: string, netns?: string): Promise<number> {
  const full = netns === undefined ? ["-j", "link", "show", "dev", device] : ["-n", netns, "-j", "link", "show", "dev", device];
  const links = JSON.parse((await runCommand("ip", full, { timeoutMs: IP_TIMEOUT_MS })).stdout || "[]") as { txqlen?: number }[];
  const length = links[0]?.txqlen;
  if (typeof length !== "number") throw new Error(`\`ip link show dev ${device}\` printed no txqlen`);
  return length;
}

/** Sets the device's transmit queue length (a TUN keeps what it holds when it grows). */
export async function setTxQueueLength(device: string, length: number, netns?: string): Promise<void> {
  await deviceCommand("ip", netns, ["link", "set", "dev", device, "txqueuelen", String(length)], device);
}

/** Deletes a (persistent) TUN device; one that is already gone is fine. */
export async function deleteTun(device: string, netns?: string): Promise<void> {
  const full = netns === undefined ? ["link", "del", "dev", device] : ["-n", netns, "link", "del", "dev", device];
  await runCommand("ip", full, { timeoutMs: IP_TIMEOUT_MS, allowFailure: true });
}

/** Runs `ip` or `tc` on the device; a failure names the command line and the device. */
async function deviceCommand(tool: "ip" | "tc", netns: string | undefined, args: string[], device: string): Promise<void> {
  const full = netns === undefined ? args : ["-n", netns, ...args];
  try {
    await runCommand(tool, full, { timeoutMs: IP_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    throw new Error(`\`${tool} ${full.join(" ")}\` failed for TUN device ${device}: ${commandFailureText(error)}`, { cause: error });
  }
}

export interface TunRoutingState {
  exists: boolean;
  /** "a.b.c.d/len" on the device, then its global IPv6 ones ("fd66::/128"; link-local left out). */
  addresses: string[];
  /**
   * Destinations ("a.b.c.d/len", then IPv6 ones) of the main-table routes through the device; IPv6
   * routes the kernel adds by itself (fe80::/64, the /128 of an address) are left out.
   */
  routes: string[];
}

/** What the kernel holds for the device now (for reconcile). */
export async function readTunRouting(device: string, netns?: string): Promise<TunRoutingState> {
  const prefix = netns === undefined ? [] : ["-n", netns];
  let addressJson: string;
  try {
    addressJson = (await runCommand("ip", [...prefix, "-j", "-4", "addr", "show", "dev", device], { timeoutMs: IP_TIMEOUT_MS })).stdout;
  } catch (error) {
    // Gone only if `ip` says so: a missing `ip`, or one killed at its timeout on a starved host
    // (seen in software-emulated VMs), is not a missing device — taking it for one would reopen
    // the engine under a running data path.
    if (error instanceof CommandFailedError && !(error instanceof CommandTimedOutError) && /does not exist|Cannot find device/.test(error.stderr)) {
      return { exists: false, addresses: [], routes: [] };
    }
    throw error;
  }
  const links = JSON.parse(addressJson || "[]") as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  const addresses = addressesOf(links);
  const routes = await routeDestinations(prefix, "-4", device);
  const v6Json = (await runCommand("ip", [...prefix, "-j", "-6", "addr", "show", "dev", device, "scope", "global"], { timeoutMs: IP_TIMEOUT_MS })).stdout;
  const v6Links = JSON.parse(v6Json || "[]") as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  addresses.push(...addressesOf(v6Links));
  routes.push(...(await routeDestinations(prefix, "-6", device)));
  return { exists: true, addresses, routes };
}

async function routeDestinations(prefix: readonly string[], family: "-4" | "-6", device: string): Promise<string[]> {
  const json = (await runCommand("ip", [...prefix, "-j", family, "route", "show", "dev", device], { timeoutMs: IP_TIMEOUT_MS })).stdout;
  return (JSON.parse(json || "[]") as { dst?: string; protocol?: string }[])
    .filter((route) => family === "-4" || route.protocol !== "kernel")
    .map((route) => route.dst ?? "")
    .filter((dst) => dst !== "")
    .map((dst) => (dst.includes("/") ? dst : `${dst}/${family === "-4" ? 32 : 128}`));
}
