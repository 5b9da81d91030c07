import { Ipv4Subnet, formatIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import type { LeaseSubnets } from "./types.js";

/**
 * Subnet lease keys (flannel-compat §1.1): `<prefix>/subnets/10.66.36.0-24`, the dual-stack form
 * `<prefix>/subnets/10.42.0.0-24&fc00::-64`, or an IPv6-only lease's `0.0.0.0-0&fc00::-64`:
 * flanneld's MakeSubnetKey always writes an IPv4 part, and in an IPv6-only network that is its
 * zero IP4Net. The subnet lives only in the key.
 */
export type SubnetKeyParts = LeaseSubnets;

/** The IPv4 part of an IPv6-only lease's key: flanneld's empty IP4Net, which names no subnet. */
export const NO_IPV4_KEY_PART = "0.0.0.0-0";

// Parsed from the end of the key, as flanneld does, so any prefix works.
const KEY_PATTERN = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&([0-9a-fA-F:.]+)-(\d{1,3}))?$/;

export function parseSubnetKey(key: string): SubnetKeyParts | undefined {
  const match = KEY_PATTERN.exec(key);
  if (!match) return undefined;
  const parsed = Ipv4Subnet.tryParse(`${match[1]}/${match[2]}`);
  // A key whose address has host bits set is not one flannel would write: treat it as malformed.
  if (!parsed || formatIpv4(parsed.network) !== match[1]) return undefined;
  const subnet = namesNoIpv4(parsed) ? undefined : parsed;
  if (match[3] === undefined) return subnet && { subnet };
  const prefixLength = Number(match[4]);
  const address = tryParseIpv6(match[3]);
  if (prefixLength > 128 || address === undefined) return undefined;
  const ipv6Subnet = new Ipv6Subnet(address, prefixLength);
  // Host bits set: not a key flannel would write (as for IPv4).
  if (ipv6Subnet.network !== address) return undefined;
  return subnet ? { subnet, ipv6Subnet } : { ipv6Subnet };
}

/** The key name for a lease's subnets, without the prefix: `10.66.36.0-24`, `0.0.0.0-0&fd66:0:0:6::-64`. */
export function subnetKeyName(parts: LeaseSubnets): string {
  const v4 = parts.subnet ? `${formatIpv4(parts.subnet.network)}-${parts.subnet.prefixLength}` : NO_IPV4_KEY_PART;
  return parts.ipv6Subnet ? `${v4}&${formatIpv6(parts.ipv6Subnet.network)}-${parts.ipv6Subnet.prefixLength}` : v4;
}

export function subnetKey(subnetsPrefix: string, parts: LeaseSubnets): string {
  return `${subnetsPrefix}${subnetKeyName(parts)}`;
}

/** The subnets a key name claims, each family read on its own (host bits masked); for occupancy only. */
export interface ClaimedSubnets {
  subnet?: Ipv4Subnet;
  ipv6Subnet?: Ipv6Subnet;
}

const LOOSE_V4 = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&|$)/;
const LOOSE_V6 = /&([0-9a-fA-F:.]+)-(\d{1,3})$/;

/**
 * What a key that may be malformed still claims: `10.66.5.0-24&fd66::zz-64` keeps 10.66.5.0/24
 * taken, and a host-bits-set part its masked subnet. Acquisition never hands out a subnet some
 * key names, even one no host can read: its writer may still be using it.
 */
export function subnetsClaimedByKey(key: string): ClaimedSubnets {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const claimed: ClaimedSubnets = {};
  const v4 = LOOSE_V4.exec(name);
  const subnet = v4 ? Ipv4Subnet.tryParse(`${v4[1]}/${v4[2]}`) : undefined;
  // 0.0.0.0-0 is an IPv6-only lease's "no IPv4": it claims nothing (as a /0 it would overlap everything).
  if (subnet && !(namesNoIpv4(subnet) && formatIpv4(subnet.network) === v4?.[1])) claimed.subnet = subnet;
  const v6 = LOOSE_V6.exec(name);
  if (v6) claimed.ipv6Subnet = Ipv6Subnet.tryParse(`${v6[1]}/${v6[2]}`);
  return claimed;
}

/** Why `key` is not a subnet key, naming the part that is wrong (for the "malformed lease" warnings). */
export function subnetKeyProblem(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const amp = name.indexOf("&");
  const v4Text = amp < 0 ? name : name.slice(0, amp);
  const example =
    "a.b.c.d-len, a.b.c.d-len&ipv6-len for dual stack or 0.0.0.0-0&ipv6-len for IPv6 only, e.g. 10.66.52.0-24&fd66:0:0:6::-64";
  const v4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})$/.exec(v4Text);
  const subnet = v4 ? Ipv4Subnet.tryParse(`${v4[1]}/${v4[2]}`) : undefined;
  if (!v4 || !subnet) return `not a subnet key: its IPv4 part "${v4Text}" is not a.b.c.d-len (expected ${example})`;
  if (namesNoIpv4(subnet) && formatIpv4(subnet.network) === v4[1] && amp < 0) return `not a subnet key: ${NO_IPV4_KEY_PART} names no IPv4 subnet and the key has no IPv6 part (expected ${example})`;
  if (formatIpv4(subnet.network) !== v4[1]) return `not a subnet key: its IPv4 part "${v4Text}" has host bits set (${subnet} would be ${subnetKeyName({ subnet })})`;
  if (amp < 0) return `not a subnet key (expected ${example})`;
  const v6Text = name.slice(amp + 1);
  const v6 = /^([0-9a-fA-F:.]+)-(\d{1,3})$/.exec(v6Text);
  const ipv6Subnet = v6 ? Ipv6Subnet.tryParse(`${v6[1]}/${v6[2]}`) : undefined;
  if (!v6 || !ipv6Subnet) return `not a subnet key: its IPv6 part "${v6Text}" is not ipv6-len (expected ${example})`;
  if (tryParseIpv6(v6[1] as string) !== ipv6Subnet.network) {
    return `not a subnet key: its IPv6 part "${v6Text}" has host bits set (${ipv6Subnet} would be ${formatIpv6(ipv6Subnet.network)}-${ipv6Subnet.prefixLength})`;
  }
  return `not a subnet key (expected ${example})`;
}

/** "10.66.52.0/24", "10.66.52.0/24 and fd66:0:0:6::/64" (dual stack) or "fd66:0:0:6::/64" (IPv6 only): for logs and CLI output. */
export function describeSubnets(parts: SubnetKeyParts): string {
  if (!parts.subnet) return parts.ipv6Subnet.toString();
  return parts.ipv6Subnet ? `${parts.subnet} and ${parts.ipv6Subnet}` : parts.subnet.toString();
}

/**
 * 0.0.0.0/0, flanneld's empty IP4Net: an IPv6-only key's IPv4 part (written 0.0.0.0-0; flanneld
 * reads 0.0.0.0-00 the same), which names no subnet.
 */
function namesNoIpv4(subnet: Ipv4Subnet): boolean {
  return subnet.network === 0 && subnet.prefixLength === 0;
}

/** The subnets as a lease holds them, or undefined when neither family is given. */
export function leaseSubnets(subnet: Ipv4Subnet | undefined, ipv6Subnet: Ipv6Subnet | undefined): LeaseSubnets | undefined {
  if (subnet) return ipv6Subnet ? { subnet, ipv6Subnet } : { subnet };
  return ipv6Subnet && { ipv6Subnet };
}

/** The one subnet a lease is known by in tables and logs: its IPv4 subnet, or its IPv6 subnet when IPv6-only. */
export function primarySubnet(parts: SubnetKeyParts): Ipv4Subnet | Ipv6Subnet {
  return parts.subnet ?? parts.ipv6Subnet;
}

/** Whether two leases hold the same subnets, both families compared. */
export function sameSubnets(a: SubnetKeyParts, b: SubnetKeyParts): boolean {
  const v4 = a.subnet && b.subnet ? a.subnet.equals(b.subnet) : a.subnet === b.subnet;
  const v6 = a.ipv6Subnet && b.ipv6Subnet ? a.ipv6Subnet.equals(b.ipv6Subnet) : a.ipv6Subnet === b.ipv6Subnet;
  return v4 && v6;
}
