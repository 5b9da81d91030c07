import { Ipv4Subnet, formatIpv4, tryParseIpv4 } from "./ipv4.js";
import { Ipv6Subnet, formatIpv6, tryParseIpv6 } from "./ipv6.js";

/**
 * Either family's subnet, for code that holds both (kernel routes, traffic rules). The IPv4
 * class stays the plain-number one, so IPv4 paths pay one `instanceof` for the IPv6 support.
 */

export type IpFamily = 4 | 6;
export type IpSubnet = Ipv4Subnet | Ipv6Subnet;

export function subnetFamily(subnet: IpSubnet): IpFamily {
  return subnet instanceof Ipv6Subnet ? 6 : 4;
}

/** Whether `inner` lies inside `outer`; false across families. */
export function subnetContains(outer: IpSubnet, inner: IpSubnet): boolean {
  if (outer instanceof Ipv6Subnet) return inner instanceof Ipv6Subnet && outer.contains(inner);
  return inner instanceof Ipv4Subnet && outer.contains(inner);
}

export function sameSubnet(a: IpSubnet, b: IpSubnet): boolean {
  if (a instanceof Ipv6Subnet) return b instanceof Ipv6Subnet && a.equals(b);
  return b instanceof Ipv4Subnet && a.equals(b);
}

/** The subnet's network address as text: "10.66.5.0", "fd66:0:0:6::". */
export function networkAddressText(subnet: IpSubnet): string {
  return subnet instanceof Ipv6Subnet ? formatIpv6(subnet.network) : formatIpv4(subnet.network);
}

/** "a.b.c.d/len" or an IPv6 CIDR; a bare address is a host route (/32, /128). Undefined when neither. */
export function tryParseIpSubnet(text: string, family: IpFamily): IpSubnet | undefined {
  if (family === 4) return Ipv4Subnet.tryParse(text.includes("/") ? text : `${text}/32`);
  return Ipv6Subnet.tryParse(text.includes("/") ? text : `${text}/128`);
}

/**
 * The canonical text of an address of either family (dotted quad; RFC 5952 for IPv6, as Go and
 * iproute2 print it), so addresses from leases and from the kernel compare as strings.
 */
export function tryCanonicalIp(text: string): { family: IpFamily; text: string } | undefined {
  const v4 = tryParseIpv4(text);
  if (v4 !== undefined) return { family: 4, text: formatIpv4(v4) };
  const v6 = tryParseIpv6(text);
  if (v6 !== undefined) return { family: 6, text: formatIpv6(v6) };
  return undefined;
}
