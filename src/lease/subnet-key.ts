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
