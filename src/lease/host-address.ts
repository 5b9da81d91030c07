import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import type { LeaseAttrs } from "./types.js";

/**
 * PublicIP of an IPv6-only lease: flanneld's LeaseAttrs.PublicIP is an IPv4 value that is always
 * written, and an IPv6-only host leaves it zero, so its lease says "PublicIP":"0.0.0.0".
 */
export const NO_PUBLIC_IP = "0.0.0.0";

/**
 * The address a lease's host is known by: its PublicIP, or for an IPv6-only lease (PublicIP
 * 0.0.0.0) its PublicIPv6 in canonical form; undefined when it has neither. flanneld matches
 * its own lease by PublicIP alone, so in an IPv6-only etcd network every flanneld host takes
 * the first host's lease (all say 0.0.0.0); weft matches IPv6-only leases by PublicIPv6.
 */
export function hostAddress(attrs: Pick<LeaseAttrs, "publicIP" | "publicIPv6">): string | undefined {
  if (attrs.publicIP !== NO_PUBLIC_IP) return attrs.publicIP;
  if (attrs.publicIPv6 === null) return undefined;
  const address = tryParseIpv6(attrs.publicIPv6);
  return address === undefined ? undefined : formatIpv6(address);
}

/** The flag that sets a host's address of this kind, for error messages. */
export function hostAddressFlag(attrs: Pick<LeaseAttrs, "publicIP">): "--public-ip" | "--public-ipv6" {
  return attrs.publicIP === NO_PUBLIC_IP ? "--public-ipv6" : "--public-ip";
}

/**
 * The address this host's own leases carry: its PublicIP (--public-ip), or in a network without
 * IPv4 its PublicIPv6 (--public-ipv6, else the interface's IPv6 address).
 */
export function ownHostAddress(leasesIpv4: boolean, external: { publicIP?: string; publicIPv6?: string }): string | undefined {
  if (leasesIpv4) return external.publicIP;
  return hostAddress({ publicIP: NO_PUBLIC_IP, publicIPv6: external.publicIPv6 ?? null });
}

/**
 * Whether a lease carries a host's address (as hostAddress gives it): an IPv6 address is
 * compared with the lease's PublicIPv6 whatever its PublicIP, so in an IPv6-only network a host
 * also recognises its dual-stack lease from before EnableIPv4 was turned off.
 */
export function carriesAddress(attrs: Pick<LeaseAttrs, "publicIP" | "publicIPv6">, address: string): boolean {
  if (!address.includes(":")) return attrs.publicIP === address;
  const own = attrs.publicIPv6 === null ? undefined : tryParseIpv6(attrs.publicIPv6);
  return own !== undefined && formatIpv6(own) === address;
}
