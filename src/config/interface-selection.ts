import { tryParseIpv4 } from "../net/ipv4.js";
import type { ExternalInterface } from "./external-interface.js";
import { errorMessage } from "../errors/error-message.js";
import { ConfigurationError } from "../errors/configuration-error.js";
import { CommandFailedError, CommandMissingError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/**
 * Chooses the underlay interface as flanneld does (flannel-compat §10):
 *   1. each --iface in order: an IPv4 address → the interface owning it; otherwise a name;
 *   2. each --iface-regex: matched against every interface's usable IPv4 addresses, then names;
 *   3. --iface-can-reach: the interface and source address of `ip route get`;
 *   4. only --public-ip: the interface owning that address (flanneld's rule);
 *   5. nothing given: the interface of the IPv4 default route.
 * Given options that match nothing are an error, never a silent fallback to the default route.
 */
export interface InterfaceSelectionOptions {
  /** --iface, repeatable: names or IPv4 addresses. */
  ifaces: string[];
  /** --iface-regex, repeatable (JavaScript syntax; RE2 patterns flannel users write are compatible). */
  ifaceRegexes: string[];
  /** --iface-can-reach: an IPv4 address. */
  ifaceCanReach?: string;
  /** --public-ip: what the lease advertises; the interface address when absent. */
  publicIP?: string;
  /** Look inside this network namespace (`ip -n`); the lab and the tests use it. */
  netns?: string;
}

/** The choice plus how it was made, so the daemon's start-up log says why. */
export interface SelectedInterface extends ExternalInterface {
  /** E.g. "--iface=eth1", "--iface-regex=^10\. (address)", "default route via 192.168.1.1". */
  selectedBy: string;
}

/** One interface with the IPv4 addresses weft may use, in the kernel's order. */
export interface Ipv4InterfaceInfo {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  /** Usable addresses: not deprecated, not loopback; global ones first, then link-local (169.254/16). */
  addresses: string[];
}

export async function selectExternalInterface(options: InterfaceSelectionOptions): Promise<SelectedInterface> {
  const publicIP = options.publicIP?.trim() || undefined;
  if (publicIP !== undefined && tryParseIpv4(publicIP) === undefined) {
    throw new Error(`--public-ip: "${publicIP}" is not an IPv4 address (expected a.b.c.d)`);
  }
  const regexes = options.ifaceRegexes.map((pattern) => compileRegex(pattern));
  const interfaces = await listIpv4Interfaces(options.netns);
  const found = (choice: Choice): SelectedInterface => ({
    name: choice.iface.name,
    index: choice.iface.index,
    address: choice.address,
    publicIP: publicIP ?? choice.address,
    mtu: choice.iface.mtu,
    selectedBy: choice.selectedBy,
  });

  if (options.ifaces.length > 0 || regexes.length > 0) {
    const tried: string[] = [];
    for (const given of options.ifaces) {
      const result = byIfaceOption(interfaces, given.trim());
      if ("iface" in result) return found(result);
      tried.push(`--iface=${given}: ${result.failure}`);
    }
    for (const { pattern, regex } of regexes) {
      const result = byRegex(interfaces, pattern, regex);
      if ("iface" in result) return found(result);
      tried.push(`--iface-regex=${pattern}: ${result.failure}`);
    }
    throw new Error(
      `no interface matches the --iface/--iface-regex options (${tried.join("; ")}); ` +
        `interfaces here: ${describeInterfaces(interfaces)}`,
    );
  }

  const canReach = options.ifaceCanReach?.trim();
  if (canReach) {
    if (tryParseIpv4(canReach) === undefined) {
      throw new Error(`--iface-can-reach: "${canReach}" is not an IPv4 address (expected a.b.c.d)`);
    }
    return found(await byRoute(interfaces, canReach, options.netns));
  }

  if (publicIP !== undefined) {
    const owner = interfaces.find((iface) => iface.addresses.includes(publicIP));
    if (!owner) {
      throw new Error(
        `--public-ip=${publicIP} is not an address of any local interface (${describeInterfaces(interfaces)}); ` +
          `if it is a NAT address, also give --iface=<name> or --iface-can-reach=<peer address>`,
      );
    }
    return found({ iface: owner, address: publicIP, selectedBy: `--public-ip=${publicIP} (owned by ${owner.name})` });
  }

  return found(await byDefaultRoute(interfaces, options.netns));
}

interface Choice {
  iface: Ipv4InterfaceInfo;
  address: string;
  selectedBy: string;
}

type Attempt = Choice | { failure: string };

function byIfaceOption(interfaces: Ipv4InterfaceInfo[], given: string): Attempt {
  if (tryParseIpv4(given) !== undefined) {
    const owner = interfaces.find((iface) => iface.addresses.includes(given));
    if (!owner) return { failure: "no interface has this address" };
    return { iface: owner, address: given, selectedBy: `--iface=${given} (address of ${owner.name})` };
  }
  const iface = interfaces.find((candidate) => candidate.name === given);
  if (!iface) return { failure: "no such interface" };
  const address = iface.addresses[0];
  if (address === undefined) return { failure: "it has no usable IPv4 address" };
  return { iface, address, selectedBy: `--iface=${given}` };
}

function byRegex(interfaces: Ipv4InterfaceInfo[], pattern: string, regex: RegExp): Attempt {
  // Addresses first across all interfaces, then names, as flanneld does.
  for (const iface of interfaces) {
    const address = iface.addresses.find((candidate) => regex.test(candidate));
    if (address !== undefined) return { iface, address, selectedBy: `--iface-regex=${pattern} (address ${address})` };
  }
  let nameMatchedWithoutAddress: string | undefined;
  for (const iface of interfaces) {
    if (!regex.test(iface.name)) continue;
    const address = iface.addresses[0];
    if (address !== undefined) return { iface, address, selectedBy: `--iface-regex=${pattern} (name ${iface.name})` };
    nameMatchedWithoutAddress ??= iface.name;
  }
  return {
    failure:
      nameMatchedWithoutAddress === undefined
        ? "matches no interface name or IPv4 address"
        : `matches ${nameMatchedWithoutAddress}, which has no usable IPv4 address`,
  };
}

async function byRoute(interfaces: Ipv4InterfaceInfo[], target: string, netns: string | undefined): Promise<Choice> {
  let output: unknown;
  try {
    output = await ipJson(["route", "get", target], netns);
  } catch (error) {
    // A missing `ip` is not a missing route: its own message says what to install.
    if (error instanceof CommandMissingError) throw error;
    throw new Error(`--iface-can-reach=${target}: no route to it: ${errorMessage(error)}`, { cause: error });
  }
  const routes = asArray(output, `ip route get ${target}`);
  const route = routes[0];
  const dev = route && typeof route.dev === "string" ? route.dev : undefined;
  const iface = interfaces.find((candidate) => candidate.name === dev);
  if (!route || !iface) {
    throw new Error(`--iface-can-reach=${target}: the route lookup named no usable interface (${JSON.stringify(routes)})`);
  }
  // The kernel's preferred source is exactly the address peers would see from us.
  const address = typeof route.prefsrc === "string" ? route.prefsrc : iface.addresses[0];
  if (address === undefined) {
    throw new Error(`--iface-can-reach=${target}: route uses ${iface.name}, which has no usable IPv4 address`);
  }
  const via = typeof route.gateway === "string" ? ` via ${route.gateway}` : "";
  return { iface, address, selectedBy: `--iface-can-reach=${target} (route${via} dev ${iface.name})` };
}

async function byDefaultRoute(interfaces: Ipv4InterfaceInfo[], netns: string | undefined): Promise<Choice> {
  const routes = asArray(await ipJson(["-4", "route", "show", "default"], netns), "ip -4 route show default");
  // The kernel lists routes to the same prefix by metric; the first one is the one it uses.
  for (const route of routes) {
    const dev = typeof route.dev === "string" ? route.dev : firstNexthopDev(route);
    const iface = interfaces.find((candidate) => candidate.name === dev);
    const address = iface?.addresses[0];
    if (iface && address !== undefined) {
      const via = typeof route.gateway === "string" ? ` via ${route.gateway}` : "";
      return { iface, address, selectedBy: `default route${via} dev ${iface.name}` };
    }
  }
  throw new Error(
    routes.length === 0
      ? `no IPv4 default route to pick the interface from; give --iface=<name or address> ` +
          `(interfaces here: ${describeInterfaces(interfaces)})`
      : `the IPv4 default route uses an interface without a usable IPv4 address (${JSON.stringify(routes)}); ` +
          `give --iface=<name or address> (interfaces here: ${describeInterfaces(interfaces)})`,
  );
}

function firstNexthopDev(route: Record<string, unknown>): string | undefined {
  const nexthops = route.nexthops;
  if (!Array.isArray(nexthops)) return undefined;
  const first: unknown = nexthops[0];
  return isRecord(first) && typeof first.dev === "string" ? first.dev : undefined;
}

function compileRegex(pattern: string): { pattern: string; regex: RegExp } {
  try {
    return { pattern, regex: new RegExp(pattern) };
  } catch (error) {
    throw new ConfigurationError(`--iface-regex: "${pattern}" is not a valid regular expression: ${errorMessage(error)}`, { cause: error });
  }
}

/** "lo (no usable IPv4), eth0 (192.168.1.5), docker0 (down, 172.17.0.1)" for error messages. */
export function describeInterfaces(interfaces: Ipv4InterfaceInfo[]): string {
  if (interfaces.length === 0) return "none";
  return interfaces
    .map((iface) => {
      const details = [...(iface.up ? [] : ["down"]), ...(iface.addresses.length ? iface.addresses : ["no usable IPv4"])];
      return `${iface.name} (${details.join(", ")})`;
    })
    .join(", ");
}

/** Every interface with its usable IPv4 addresses, from `ip -j addr show`. */
export async function listIpv4Interfaces(netns?: string): Promise<Ipv4InterfaceInfo[]> {
  const links = asArray(await ipJson(["addr", "show"], netns), "ip addr show");
  return links.map((link) => {
    const global: string[] = [];
    const linkLocal: string[] = [];
    for (const info of Array.isArray(link.addr_info) ? link.addr_info : []) {
      if (!isRecord(info) || info.family !== "inet" || typeof info.local !== "string" || info.deprecated === true) continue;
      const address = info.local;
      if (address.startsWith("127.") || address === "0.0.0.0") continue;
      (address.startsWith("169.254.") ? linkLocal : global).push(address);
    }
    const flags = Array.isArray(link.flags) ? link.flags : [];
    return {
      name: String(link.ifname),
      index: Number(link.ifindex),
      mtu: Number(link.mtu),
      up: flags.includes("UP"),
      // flanneld prefers a global address and uses a link-local one only when there is nothing else.
      addresses: [...global, ...linkLocal],
    };
  });
}

async function ipJson(args: string[], netns: string | undefined): Promise<unknown> {
  const fullArgs = [...(netns ? ["-n", netns] : []), "-j", ...args];
  let stdout: string;
  try {
    ({ stdout } = await runCommand("ip", fullArgs, { timeoutMs: 10_000 }));
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    throw new Error(
      `interface selection: \`ip ${fullArgs.join(" ")}\` failed: ${commandFailureText(error)}` +
        ` (is iproute2 installed${netns ? ` and does netns ${netns} exist` : ""}?)`,
      { cause: error },
    );
  }
  // `ip route get` and empty listings print nothing or "[]".
  return stdout.trim() === "" ? [] : (JSON.parse(stdout) as unknown);
}

function asArray(value: unknown, command: string): Record<string, unknown>[] {
  if (!Array.isArray(value)) throw new Error(`interface selection: \`${command}\` did not print a JSON array`);
  return value.filter(isRecord);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
