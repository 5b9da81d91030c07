import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Ipv4Subnet } from "../net/ipv4.js";
import { errorMessage } from "../errors/error-message.js";

const execFileAsync = promisify(execFile);

/**
 * Addresses a weft TUN device as flannel addresses flannel0 (spec §5): the lease's network
 * address as a /32 (no broadcast routes), and one route for the whole flannel Network through
 * the device; the local subnet on docker0 is more specific and wins. Runs `ip` (not on the hot
 * path); `netns` runs it in that namespace (`ip -n`).
 */
export async function addressTun(
  device: string,
  ownSubnet: Ipv4Subnet,
  network: Ipv4Subnet,
  netns?: string,
): Promise<void> {
  const address = `${ownSubnet.toString().split("/")[0]}/32`;
  // replace: idempotent across re-activation with the same lease; a different old /32 is flushed first.
  await ip(netns, ["addr", "flush", "dev", device], device);
  await ip(netns, ["addr", "replace", address, "dev", device], device);
  await ip(netns, ["route", "replace", network.toString(), "dev", device], device);
}

async function ip(netns: string | undefined, args: string[], device: string): Promise<void> {
  const full = netns === undefined ? args : ["-n", netns, ...args];
  try {
    await execFileAsync("ip", full, { timeout: 10_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`\`ip ${full.join(" ")}\` failed for TUN device ${device}: ${stderr || errorMessage(error)}`);
  }
}

export interface TunRoutingState {
  exists: boolean;
  /** "a.b.c.d/len" on the device. */
  addresses: string[];
  /** Destinations ("a.b.c.d/len") of the main-table routes through the device. */
  routes: string[];
}

/** What the kernel holds for the device now (for reconcile). */
export async function readTunRouting(device: string, netns?: string): Promise<TunRoutingState> {
  const prefix = netns === undefined ? [] : ["-n", netns];
  let addressJson: string;
  try {
    addressJson = (await execFileAsync("ip", [...prefix, "-j", "-4", "addr", "show", "dev", device], { timeout: 10_000 })).stdout;
  } catch {
    return { exists: false, addresses: [], routes: [] };
  }
  const links = JSON.parse(addressJson || "[]") as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  const addresses = (links[0]?.addr_info ?? []).map((info) => `${info.local}/${info.prefixlen}`);
  const routeJson = (await execFileAsync("ip", [...prefix, "-j", "-4", "route", "show", "dev", device], { timeout: 10_000 })).stdout;
  const routes = (JSON.parse(routeJson || "[]") as { dst?: string }[])
    .map((route) => route.dst ?? "")
    .filter((dst) => dst !== "")
    .map((dst) => (dst.includes("/") ? dst : `${dst}/32`));
  return { exists: true, addresses, routes };
}
