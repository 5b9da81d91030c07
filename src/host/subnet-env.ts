import { readFile } from "node:fs/promises";
import { Ipv4Subnet, formatIpv4, tryParseIpv4, type Ipv4Number } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, tryParseIpv6, type Ipv6Number } from "../net/ipv6.js";
import type { NetworkConfig } from "../config/network-config.js";
import { writeFileAtomic } from "./atomic-file.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * The subnet file (flannel-compat §3.1, default /run/flannel/subnet.env): what Docker and systemd units
 * read to build docker0. Every field is optional because a file written by another flanneld
 * version, or by hand, may lack any of them.
 */
export interface SubnetEnv {
  /** FLANNEL_NETWORK: the cluster Network. */
  network?: Ipv4Subnet;
  /** FLANNEL_SUBNET: the bridge address inside the own subnet, e.g. 10.66.36.1/24. */
  subnetAddress?: { address: Ipv4Number; prefixLength: number };
  /** FLANNEL_IPV6_NETWORK: the cluster IPv6Network (dual stack only), e.g. fd66::/48; checked on parse, kept as written. */
  ipv6Network?: string;
  /**
   * FLANNEL_IPV6_SUBNET: docker0's IPv6 address inside the own IPv6 subnet with its prefix, e.g.
   * fd66:0:0:6::1/64; checked on parse, kept as written (the lab hands it to `ip addr` as is).
   */
  ipv6Subnet?: string;
  /** FLANNEL_MTU. */
  mtu?: number;
  /** FLANNEL_IPMASQ. */
  ipMasq?: boolean;
}

/** flanneld's exact text: KEY=value lines, no quotes, absent fields left out, trailing newline. */
export function formatSubnetEnv(env: SubnetEnv): string {
  const lines: string[] = [];
  if (env.network) lines.push(`FLANNEL_NETWORK=${env.network.toString()}`);
  if (env.subnetAddress) {
    lines.push(`FLANNEL_SUBNET=${formatIpv4(env.subnetAddress.address)}/${env.subnetAddress.prefixLength}`);
  }
  // flanneld writes the two IPv6 lines together, after the IPv4 ones, whenever EnableIPv6 is on.
  if (env.ipv6Network !== undefined) lines.push(`FLANNEL_IPV6_NETWORK=${env.ipv6Network}`);
  if (env.ipv6Subnet !== undefined) lines.push(`FLANNEL_IPV6_SUBNET=${env.ipv6Subnet}`);
  if (env.mtu !== undefined) lines.push(`FLANNEL_MTU=${env.mtu}`);
  if (env.ipMasq !== undefined) lines.push(`FLANNEL_IPMASQ=${env.ipMasq ? "true" : "false"}`);
  return lines.map((line) => `${line}\n`).join("");
}

/**
 * Parses a subnet file. flanneld reads it with godotenv, so the same leniency applies:
 * blank lines, `#` comments, an `export ` prefix, quoted values. Unknown keys are ignored
 * (users append their own variables for systemd units). `path` only names the file in errors.
 */
export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const env: SubnetEnv = {};
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const where = `${path}:${index + 1}`;
    const entry = splitLine(lines[index] as string, where);
    if (!entry) continue;
    const { key, value } = entry;
    const bad = (expected: string): Error =>
      new Error(`${where}: ${key}="${value}" is not ${expected}; fix or delete the file (weft rewrites it)`);
    switch (key) {
      case "FLANNEL_NETWORK": {
        const network = Ipv4Subnet.tryParse(value);
        if (!network) throw bad("an IPv4 CIDR (a.b.c.d/len)");
        env.network = network;
        break;
      }
      case "FLANNEL_SUBNET": {
        const subnetAddress = parseAddressWithPrefix(value);
        if (!subnetAddress) throw bad("an IPv4 address with prefix length (a.b.c.d/len)");
        env.subnetAddress = subnetAddress;
        break;
      }
      case "FLANNEL_IPV6_NETWORK":
        if (!Ipv6Subnet.tryParse(value)) throw bad("an IPv6 CIDR (e.g. fd66::/48)");
        env.ipv6Network = value;
        break;
      case "FLANNEL_IPV6_SUBNET":
        if (!parseIpv6AddressWithPrefix(value)) throw bad("an IPv6 address with prefix length (e.g. fd66:0:0:6::1/64)");
        env.ipv6Subnet = value;
        break;
      case "FLANNEL_MTU": {
        const mtu = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
        if (!(mtu >= 68 && mtu <= 65535)) throw bad("an MTU between 68 and 65535");
        env.mtu = mtu;
        break;
      }
      case "FLANNEL_IPMASQ":
        if (value !== "true" && value !== "false") throw bad("true or false");
        env.ipMasq = value === "true";
        break;
      default:
        break;
    }
  }
  return env;
}

/** One `KEY=value` line, or undefined for blank and comment lines. */
function splitLine(rawLine: string, where: string): { key: string; value: string } | undefined {
  let line = rawLine.trim();
  if (line === "" || line.startsWith("#")) return undefined;
  if (line.startsWith("export ")) line = line.slice("export ".length).trimStart();
  const equals = line.indexOf("=");
  if (equals <= 0) throw new Error(`${where}: "${rawLine}" is not a KEY=value line`);
  const key = line.slice(0, equals).trim();
  if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new Error(`${where}: "${key}" is not a valid variable name`);
  return { key, value: unquote(line.slice(equals + 1).trim(), key, where) };
}

function unquote(value: string, key: string, where: string): string {
  const quote = value[0];
  if (quote === '"' || quote === "'") {
    const end = value.indexOf(quote, 1);
    if (end < 0) throw new Error(`${where}: ${key} has an unterminated ${quote} quote`);
    return value.slice(1, end);
  }
  // Unquoted values end at an inline comment, as in godotenv and shells.
  const comment = value.search(/\s#/);
  return (comment >= 0 ? value.slice(0, comment) : value).trim();
}

function parseAddressWithPrefix(text: string): { address: Ipv4Number; prefixLength: number } | undefined {
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const address = tryParseIpv4(match[1] as string);
  const prefixLength = Number(match[2]);
  if (address === undefined || prefixLength > 32) return undefined;
  return { address, prefixLength };
}

function parseIpv6AddressWithPrefix(text: string): { address: Ipv6Number; prefixLength: number } | undefined {
  const match = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(text);
  if (!match) return undefined;
  const address = tryParseIpv6(match[1] as string);
  const prefixLength = Number(match[2]);
  if (address === undefined || prefixLength > 128) return undefined;
  return { address, prefixLength };
}

/** The subnet FLANNEL_IPV6_SUBNET lies in (host bits masked, as flanneld's net.ParseCIDR): the previous IPv6 subnet. */
export function previousIpv6Subnet(env: SubnetEnv): Ipv6Subnet | undefined {
  const subnetAddress = env.ipv6Subnet === undefined ? undefined : parseIpv6AddressWithPrefix(env.ipv6Subnet);
  return subnetAddress && new Ipv6Subnet(subnetAddress.address, subnetAddress.prefixLength);
}

/** The subnet FLANNEL_SUBNET lies in (host bits masked): the "previous subnet" of flannel-compat §1.7. */
export function previousSubnet(env: SubnetEnv): Ipv4Subnet | undefined {
  if (!env.subnetAddress) return undefined;
  return new Ipv4Subnet(env.subnetAddress.address, env.subnetAddress.prefixLength);
}

/**
 * What flanneld writes for its lease (WriteSubnetFile): the first address of each subnet (docker0's)
 * with the subnet's prefix; the IPv4 pair whenever EnableIPv4 is on (not in an IPv6-only network),
 * the IPv6 pair whenever EnableIPv6 is.
 */
export function subnetEnvFor(config: NetworkConfig, subnets: { subnet?: Ipv4Subnet; ipv6Subnet?: Ipv6Subnet }, settings: { mtu: number; ipMasq: boolean }): SubnetEnv {
  const env: SubnetEnv = {};
  if (config.ipv4 && subnets.subnet) {
    env.network = config.ipv4.network;
    env.subnetAddress = { address: subnets.subnet.addressAt(1), prefixLength: subnets.subnet.prefixLength };
  }
  if (config.ipv6 && subnets.ipv6Subnet) {
    env.ipv6Network = config.ipv6.network.toString();
    env.ipv6Subnet = `${formatIpv6(subnets.ipv6Subnet.addressAt(1))}/${subnets.ipv6Subnet.prefixLength}`;
  }
  return { ...env, mtu: settings.mtu, ipMasq: settings.ipMasq };
}

/** Writes the file atomically (flannel-compat §3.1: parent dir 0755, file 0644, never seen half-written). */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  await writeFileAtomic(path, formatSubnetEnv(env), "subnet file");
}

/** Reads and parses the file; undefined when it does not exist (first start). */
export async function readSubnetEnv(path: string): Promise<SubnetEnv | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`subnet file ${path}: cannot read: ${errorMessage(error)}`);
  }
  return parseSubnetEnv(text, path);
}
