import { Ipv4Subnet, formatIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, tryParseIpv6 } from "../net/ipv6.js";

/**
 * Subnet lease keys (flannel-compat §1.1): `<prefix>/subnets/10.66.36.0-24`, or the dual-stack form
 * `<prefix>/subnets/10.42.0.0-24&fc00::-64`. The subnet lives only in the key.
 */
export interface SubnetKeyParts {
  subnet: Ipv4Subnet;
  ipv6Subnet?: Ipv6Subnet;
}

// Parsed from the end of the key, as flanneld does, so any prefix works.
const KEY_PATTERN = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})(?:&([0-9a-fA-F:.]+)-(\d{1,3}))?$/;

export function parseSubnetKey(key: string): SubnetKeyParts | undefined {
  const match = KEY_PATTERN.exec(key);
  if (!match) return undefined;
  const subnet = Ipv4Subnet.tryParse(`${match[1]}/${match[2]}`);
  // A key whose address has host bits set is not one flannel would write: treat it as malformed.
  if (!subnet || formatIpv4(subnet.network) !== match[1]) return undefined;
  if (match[3] === undefined) return { subnet };
  const prefixLength = Number(match[4]);
  const address = tryParseIpv6(match[3]);
  if (prefixLength > 128 || address === undefined) return undefined;
  const ipv6Subnet = new Ipv6Subnet(address, prefixLength);
  // Host bits set: not a key flannel would write (as for IPv4).
  if (ipv6Subnet.network !== address) return undefined;
  return { subnet, ipv6Subnet };
}

/** The key name for a subnet, without the prefix: `10.66.36.0-24`. */
export function subnetKeyName(subnet: Ipv4Subnet, ipv6Subnet?: Ipv6Subnet): string {
  const v4 = `${formatIpv4(subnet.network)}-${subnet.prefixLength}`;
  return ipv6Subnet ? `${v4}&${formatIpv6(ipv6Subnet.network)}-${ipv6Subnet.prefixLength}` : v4;
}

export function subnetKey(subnetsPrefix: string, subnet: Ipv4Subnet, ipv6Subnet?: Ipv6Subnet): string {
  return `${subnetsPrefix}${subnetKeyName(subnet, ipv6Subnet)}`;
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
  if (v4) claimed.subnet = Ipv4Subnet.tryParse(`${v4[1]}/${v4[2]}`);
  const v6 = LOOSE_V6.exec(name);
  if (v6) claimed.ipv6Subnet = Ipv6Subnet.tryParse(`${v6[1]}/${v6[2]}`);
  return claimed;
}

/** Why `key` is not a subnet key, naming the part that is wrong (for the "malformed lease" warnings). */
export function subnetKeyProblem(key: string): string {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const amp = name.indexOf("&");
  const v4Text = amp < 0 ? name : name.slice(0, amp);
  const example = "a.b.c.d-len, or a.b.c.d-len&ipv6-len for dual stack, e.g. 10.66.52.0-24&fd66:0:0:6::-64";
  const v4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,2})$/.exec(v4Text);
  const subnet = v4 ? Ipv4Subnet.tryParse(`${v4[1]}/${v4[2]}`) : undefined;
  if (!v4 || !subnet) return `not a subnet key: its IPv4 part "${v4Text}" is not a.b.c.d-len (expected ${example})`;
  if (formatIpv4(subnet.network) !== v4[1]) return `not a subnet key: its IPv4 part "${v4Text}" has host bits set (${subnet} would be ${subnetKeyName(subnet)})`;
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

/** "10.66.52.0/24", or "10.66.52.0/24 and fd66:0:0:6::/64" for a dual-stack lease: for logs and CLI output. */
export function describeSubnets(parts: SubnetKeyParts): string {
  return parts.ipv6Subnet ? `${parts.subnet} and ${parts.ipv6Subnet}` : parts.subnet.toString();
}
