import { tryParseIpv4 } from "../net/ipv4.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import type { ExternalInterface } from "./external-interface.js";
import { errorMessage } from "../errors/error-message.js";
import { ConfigurationError } from "../errors/configuration-error.js";
import { CommandMissingError } from "../process/command-errors.js";
import { asArray, describeInterfaces, ipJson, isRecord, listInterfaces, type InterfaceInfo } from "./interface-listing.js";

/**
 * Chooses the underlay interface as flanneld does (flannel-compat §10, flannel's ipmatch.LookupExtIface):
 *   1. each --iface in order: an IPv4 or IPv6 address → the interface owning it; otherwise a name;
 *   2. each --iface-regex: matched against every interface's usable addresses (dual stack: an IPv4
 *      and an IPv6 address of the same interface must both match, as flanneld), then names;
 *   3. --iface-can-reach (IPv4 or IPv6): the interface and source address of `ip route get`;
 *   4. only --public-ip (or, dual stack, only --public-ipv6): the interface owning that address;
 *   5. nothing given: the interface of the IPv4 default route (dual stack: an IPv6 default route,
 *      when there is one, must use the same interface, as flanneld checks).
 * Dual stack (the network config's EnableIPv6): the interface's first usable global IPv6 address
 * (ULA included) is its addressV6 unless the option named one; none is an error naming the
 * interface. Given options that match nothing are an error, never a silent fallback to the default route.
 */
export interface InterfaceSelectionOptions {
  /** --iface, repeatable: names, IPv4 or IPv6 addresses. */
  ifaces: string[];
  /** --iface-regex, repeatable (JavaScript syntax; RE2 patterns flannel users write are compatible). */
  ifaceRegexes: string[];
  /** --iface-can-reach: an IPv4 or IPv6 address. */
  ifaceCanReach?: string;
  /** --public-ip: what the lease advertises; the interface address when absent. */
  publicIP?: string;
  /** --public-ipv6: what a dual-stack lease advertises as PublicIPv6; the interface's IPv6 address when absent. */
  publicIPv6?: string;
  /** Look inside this network namespace (`ip -n`); the lab and the tests use it. */
  netns?: string;
}

/** Which families the network leases: `ipv6` is the network config's EnableIPv6, `ipv4` its EnableIPv4 (default true). */
export interface AddressFamilies {
  ipv6: boolean;
  /**
   * false (an IPv6-only network): the interface is chosen by its IPv6 address, as flanneld's
   * ipv6Stack (the IPv6 default route, IPv6 addresses for --iface-regex), and needs no IPv4.
   */
  ipv4?: boolean;
}

/** The choice plus how it was made, so the daemon's start-up log says why. */
export interface SelectedInterface extends ExternalInterface {
  /** E.g. "--iface=eth1", "--iface-regex=^10\. (address)", "default route via 192.168.1.1". */
  selectedBy: string;
}

export async function selectExternalInterface(options: InterfaceSelectionOptions, families: AddressFamilies = { ipv6: false }): Promise<SelectedInterface> {
  const publicIP = options.publicIP?.trim() || undefined;
  if (publicIP !== undefined && tryParseIpv4(publicIP) === undefined) {
    throw new Error(`--public-ip: "${publicIP}" is not an IPv4 address (expected a.b.c.d)`);
  }
  // Written as Go prints it, as flanneld's lease would carry it (FD00:0::1 → fd00::1).
  const publicIPv6 = options.publicIPv6?.trim() ? canonicalIpv6(options.publicIPv6.trim(), "--public-ipv6") : undefined;
  const dualStack = families.ipv6;
  const ipv6Only = families.ipv6 && families.ipv4 === false;
  const regexes = options.ifaceRegexes.map((pattern) => compileRegex(pattern));
  const interfaces = await listInterfaces(options.netns);
  const found = (choice: Choice): SelectedInterface => {
    const selected: SelectedInterface = { name: choice.iface.name, index: choice.iface.index, mtu: choice.iface.mtu, selectedBy: choice.selectedBy };
    if (choice.address !== undefined) selected.address = choice.address;
    const advertised = publicIP ?? choice.address;
    if (advertised !== undefined) selected.publicIP = advertised;
    if (!dualStack) return selected;
    const addressV6 = ipv6AddressOf(choice, publicIPv6, interfaces);
    return { ...selected, addressV6, publicIPv6: publicIPv6 ?? addressV6 };
  };

  if (options.ifaces.length > 0 || regexes.length > 0) {
    const tried: string[] = [];
    for (const given of options.ifaces) {
      const result = byIfaceOption(interfaces, given.trim(), ipv6Only);
      if ("iface" in result) return found(result);
      tried.push(`--iface=${given}: ${result.failure}`);
    }
    for (const { pattern, regex } of regexes) {
      const result = ipv6Only ? byIpv6Regex(interfaces, pattern, regex) : byRegex(interfaces, pattern, regex, dualStack);
      if ("iface" in result) return found(result);
      tried.push(`--iface-regex=${pattern}: ${result.failure}`);
    }
    throw new Error(
      `no interface matches the --iface/--iface-regex options (${tried.join("; ")}); ` +
        `interfaces here: ${describeInterfaces(interfaces, { ipv6: dualStack })}`,
    );
  }

  const canReach = options.ifaceCanReach?.trim();
  if (canReach) {
    if (tryParseIpv4(canReach) === undefined && tryParseIpv6(canReach) === undefined) {
      throw new Error(`--iface-can-reach: "${canReach}" is not an IPv4 or IPv6 address`);
    }
    return found(await byRoute(interfaces, canReach, options.netns, ipv6Only));
  }

  if (publicIP !== undefined && !ipv6Only) {
    const owner = interfaces.find((iface) => iface.addresses.includes(publicIP));
    if (!owner) {
      throw new Error(
        `--public-ip=${publicIP} is not an address of any local interface (${describeInterfaces(interfaces)}); ` +
          `if it is a NAT address, also give --iface=<name> or --iface-can-reach=<peer address>`,
      );
    }
    return found({ iface: owner, address: publicIP, selectedBy: `--public-ip=${publicIP} (owned by ${owner.name})` });
  }
  if (dualStack && publicIPv6 !== undefined) {
    const owner = interfaces.find((iface) => iface.ipv6Addresses.includes(publicIPv6));
    if (!owner) {
      throw new Error(
        `--public-ipv6=${publicIPv6} is not an address of any local interface (${describeInterfaces(interfaces, { ipv6: true })}); ` +
          `if it is a NAT address, also give --iface=<name> or --iface-can-reach=<peer address>`,
      );
    }
    const choice = withIpv4(owner, `--public-ipv6=${publicIPv6} (owned by ${owner.name})`, ipv6Only);
    if (!("iface" in choice)) throw new Error(`--public-ipv6=${publicIPv6}: ${choice.failure}; a dual-stack host needs both families on one interface`);
    return found({ ...choice, addressV6: publicIPv6 });
  }

  if (ipv6Only) return found((await byIpv6DefaultRoute(interfaces, options.netns)) ?? (await byDefaultRoute(interfaces, options.netns)));
  const byDefault = await byDefaultRoute(interfaces, options.netns);
  if (dualStack) await checkIpv6DefaultRoute(byDefault.iface, interfaces, options.netns);
  return found(byDefault);
}

interface Choice {
  iface: InterfaceInfo;
  /** Its IPv4 address; absent only in an IPv6-only network. */
  address?: string;
  /** The IPv6 address the option itself named (an IPv6 --iface, a regex match, a route's source). */
  addressV6?: string;
  selectedBy: string;
}

type Attempt = Choice | { failure: string };

/** The IPv6 address of a dual-stack host: the one the option named, a local --public-ipv6, else the interface's first. */
function ipv6AddressOf(choice: Choice, publicIPv6: string | undefined, interfaces: InterfaceInfo[]): string {
  const { iface } = choice;
  if (choice.addressV6 !== undefined) return choice.addressV6;
  if (publicIPv6 !== undefined) {
    if (iface.ipv6Addresses.includes(publicIPv6)) return publicIPv6;
    // flanneld: "v6 interface X must be the same with v4 interface Y". A NAT address (nobody's) is fine.
    const owner = interfaces.find((other) => other.ipv6Addresses.includes(publicIPv6));
    if (owner) {
      throw new Error(
        `--public-ipv6=${publicIPv6} belongs to ${owner.name}, but the underlay interface is ${iface.name} (${choice.selectedBy}): ` +
          `both families must use one interface; give --iface=${owner.name}, or a --public-ipv6 of ${iface.name}`,
      );
    }
  }
  const address = iface.ipv6Addresses[0];
  if (address !== undefined) return address;
  const linkLocal = iface.ipv6LinkLocal.length > 0 ? `it has only link-local ${iface.ipv6LinkLocal.join(", ")}, which peers cannot reach without a zone` : "it has none";
  throw new Error(
    `interface ${iface.name} (${choice.selectedBy}) has no usable IPv6 address (global or ULA, not deprecated): ${linkLocal}; ` +
      `the network config enables IPv6 (EnableIPv6), so add one (ip addr add fd00::5/64 dev ${iface.name}) or choose another interface with --iface`,
  );
}

/** The interface with its first IPv4 address; without one a failure, unless the network is IPv6-only. */
function withIpv4(iface: InterfaceInfo, selectedBy: string, ipv6Only = false): Choice | { failure: string } {
  if (ipv6Only) return withAnyIpv4(iface, selectedBy);
  const address = iface.addresses[0];
  return address === undefined ? { failure: `${iface.name} has no usable IPv4 address` } : { iface, address, selectedBy };
}

/** An IPv6-only network's choice: the interface's IPv4 address when it has one (its leases never use it), else none. */
function withAnyIpv4(iface: InterfaceInfo, selectedBy: string): Choice {
  const address = iface.addresses[0];
  return address === undefined ? { iface, selectedBy } : { iface, address, selectedBy };
}

function byIfaceOption(interfaces: InterfaceInfo[], given: string, ipv6Only: boolean): Attempt {
  if (tryParseIpv4(given) !== undefined) {
    const owner = interfaces.find((iface) => iface.addresses.includes(given));
    if (!owner) return { failure: "no interface has this address" };
    return { iface: owner, address: given, selectedBy: `--iface=${given} (address of ${owner.name})` };
  }
  const v6 = tryParseIpv6(given);
  if (v6 !== undefined) {
    const address = formatIpv6(v6);
    const owner = interfaces.find((iface) => iface.ipv6Addresses.includes(address));
    if (!owner) return { failure: "no interface has this IPv6 address (global or ULA)" };
    const choice = withIpv4(owner, `--iface=${given} (IPv6 address of ${owner.name})`, ipv6Only);
    return "iface" in choice ? { ...choice, addressV6: address } : choice;
  }
  const iface = interfaces.find((candidate) => candidate.name === given);
  if (!iface) return { failure: "no such interface" };
  const address = iface.addresses[0];
  if (address === undefined) return ipv6Only ? withAnyIpv4(iface, `--iface=${given}`) : { failure: "it has no usable IPv4 address" };
  return { iface, address, selectedBy: `--iface=${given}` };
}

/** An IPv6-only network's --iface-regex: IPv6 addresses first across all interfaces, then names (flanneld's ipv6Stack). */
function byIpv6Regex(interfaces: InterfaceInfo[], pattern: string, regex: RegExp): Attempt {
  for (const iface of interfaces) {
    const addressV6 = iface.ipv6Addresses.find((candidate) => regex.test(candidate));
    if (addressV6 !== undefined) return { ...withAnyIpv4(iface, `--iface-regex=${pattern} (IPv6 address ${addressV6})`), addressV6 };
  }
  const named = interfaces.find((iface) => regex.test(iface.name) && iface.ipv6Addresses.length > 0);
  if (named) return withAnyIpv4(named, `--iface-regex=${pattern} (name ${named.name})`);
  return { failure: "matches no interface name (with a usable IPv6 address) or IPv6 address" };
}

function byRegex(interfaces: InterfaceInfo[], pattern: string, regex: RegExp, dualStack: boolean): Attempt {
  // Addresses first across all interfaces, then names, as flanneld does.
  for (const iface of interfaces) {
    const address = iface.addresses.find((candidate) => regex.test(candidate));
    if (address === undefined) continue;
    if (!dualStack) return { iface, address, selectedBy: `--iface-regex=${pattern} (address ${address})` };
    const addressV6 = iface.ipv6Addresses.find((candidate) => regex.test(candidate));
    if (addressV6 !== undefined) return { iface, address, addressV6, selectedBy: `--iface-regex=${pattern} (addresses ${address} and ${addressV6})` };
  }
  let nameMatchedWithoutAddress: string | undefined;
  for (const iface of interfaces) {
    if (!regex.test(iface.name)) continue;
    const address = iface.addresses[0];
    if (address !== undefined) return { iface, address, selectedBy: `--iface-regex=${pattern} (name ${iface.name})` };
    nameMatchedWithoutAddress ??= iface.name;
  }
  const addressesTried = dualStack ? "an IPv4 and an IPv6 address of one interface" : "IPv4 address";
  return {
    failure:
      nameMatchedWithoutAddress === undefined
        ? `matches no interface name or ${addressesTried}`
        : `matches ${nameMatchedWithoutAddress}, which has no usable IPv4 address`,
  };
}

async function byRoute(interfaces: InterfaceInfo[], target: string, netns: string | undefined, ipv6Only: boolean): Promise<Choice> {
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
  const via = typeof route.gateway === "string" ? ` via ${route.gateway}` : "";
  const selectedBy = `--iface-can-reach=${target} (route${via} dev ${iface.name})`;
  // The kernel's preferred source is exactly the address peers would see from us, in the target's family.
  const prefsrc = typeof route.prefsrc === "string" ? route.prefsrc : undefined;
  if (tryParseIpv4(target) === undefined) {
    const choice = withIpv4(iface, selectedBy, ipv6Only);
    if (!("iface" in choice)) throw new Error(`--iface-can-reach=${target}: route uses ${iface.name}, which has no usable IPv4 address`);
    const source = prefsrc !== undefined ? tryParseIpv6(prefsrc) : undefined;
    return source !== undefined && iface.ipv6Addresses.includes(formatIpv6(source)) ? { ...choice, addressV6: formatIpv6(source) } : choice;
  }
  const address = prefsrc ?? iface.addresses[0];
  if (address === undefined) {
    throw new Error(`--iface-can-reach=${target}: route uses ${iface.name}, which has no usable IPv4 address`);
  }
  return { iface, address, selectedBy };
}

async function byDefaultRoute(interfaces: InterfaceInfo[], netns: string | undefined): Promise<Choice> {
  const routes = asArray(await ipJson(["-4", "route", "show", "default"], netns), "ip -4 route show default");
  // The kernel lists routes to the same prefix by metric; the first one is the one it uses.
  for (const route of routes) {
    const dev = routeDev(route);
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

/** An IPv6-only network's default: the IPv6 default route's interface; undefined without one (then the IPv4 default route's). */
async function byIpv6DefaultRoute(interfaces: InterfaceInfo[], netns: string | undefined): Promise<Choice | undefined> {
  const routes = asArray(await ipJson(["-6", "route", "show", "default"], netns), "ip -6 route show default");
  for (const route of routes) {
    const iface = interfaces.find((candidate) => candidate.name === routeDev(route));
    if (!iface || iface.ipv6Addresses.length === 0) continue;
    const via = typeof route.gateway === "string" ? ` via ${route.gateway}` : "";
    return withAnyIpv4(iface, `IPv6 default route${via} dev ${iface.name}`);
  }
  return undefined;
}

/**
 * flanneld refuses a dual-stack host whose IPv6 default route leaves by another interface than
 * the IPv4 one. Without an IPv6 default route at all (a lab underlay, peers on-link) flanneld
 * refuses too; weft takes the IPv4 default route's interface for both, where its peers are.
 */
async function checkIpv6DefaultRoute(iface: InterfaceInfo, interfaces: InterfaceInfo[], netns: string | undefined): Promise<void> {
  const routes = asArray(await ipJson(["-6", "route", "show", "default"], netns), "ip -6 route show default");
  const dev = routes.map(routeDev).find((name) => name !== undefined);
  if (dev === undefined || dev === iface.name) return;
  if (!interfaces.some((candidate) => candidate.name === dev)) return;
  throw new Error(
    `the IPv6 default route uses ${dev}, the IPv4 default route ${iface.name}: a dual-stack underlay must use one interface ` +
      `for both (flanneld refuses this too); give --iface=<name>`,
  );
}

function routeDev(route: Record<string, unknown>): string | undefined {
  return typeof route.dev === "string" ? route.dev : firstNexthopDev(route);
}

function canonicalIpv6(text: string, flag: string): string {
  const value = tryParseIpv6(text);
  if (value === undefined || tryParseIpv4(text) !== undefined) throw new ConfigurationError(`${flag}: "${text}" is not an IPv6 address (expected e.g. fd00::5)`);
  return formatIpv6(value);
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

