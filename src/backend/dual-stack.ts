import type { Refusal } from "./peer-table.js";
import type { Lease } from "../lease/types.js";
import type { NetworkConfig } from "../config/network-config.js";
import type { Ipv6Subnet } from "../net/ipv6.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";

/**
 * The IPv6 half of leases, as the kernel backends of a dual-stack network read it. A lease
 * without an IPv6 subnet is a single-stack host's, served over IPv4 only (as flanneld does);
 * one with an IPv6 subnet but no usable PublicIPv6 (missing, not an address, or one no host
 * can be reached at: ::, ::1, multicast, link-local, IPv4-mapped) is refused as a whole, since
 * the IPv6 state it asks for cannot be built.
 */

export interface PeerIpv6 {
  subnet: Ipv6Subnet;
  /** Canonical (RFC 5952), so it compares equal to what the kernel reports. */
  publicIPv6: string;
}

export function peerIpv6(lease: Lease): PeerIpv6 | Refusal | undefined {
  const subnet = lease.ipv6Subnet;
  if (subnet === undefined) return undefined;
  const text = lease.attrs.publicIPv6;
  const address = text === null ? undefined : tryParseIpv6(text);
  if (address === undefined) {
    return {
      refused: `lease ${lease.key} has the IPv6 subnet ${subnet} but ${text === null ? "no PublicIPv6" : `PublicIPv6 ${JSON.stringify(text)}, not an IPv6 address`}`,
      level: "warn",
    };
  }
  const unusable = unreachableKind(address);
  if (unusable) return { refused: `lease ${lease.key} advertises PublicIPv6 ${text}, ${unusable}, which no peer can send to`, level: "warn" };
  return { subnet, publicIPv6: formatIpv6(address) };
}

/** Why an IPv6 address cannot be a host's underlay address, or undefined when it can. */
function unreachableKind(address: bigint): string | undefined {
  if (address === 0n) return "the unspecified address";
  if (address === 1n) return "the loopback address";
  if (address >> 120n === 0xffn) return "a multicast address";
  if (address >> 118n === 0x3fan) return "a link-local address (it needs an interface zone)";
  if (address >> 32n === 0xffffn) return "an IPv4-mapped address";
  return undefined;
}

/** The own lease's IPv6 subnet on a dual-stack network; a lease without one is the control plane's bug. */
export function ownIpv6Subnet(own: Lease): Ipv6Subnet {
  if (own.ipv6Subnet === undefined) {
    throw new Error(`the network is dual-stack (EnableIPv6) but the own lease ${own.key} has no IPv6 subnet; it must be re-acquired with both families`);
  }
  return own.ipv6Subnet;
}

/**
 * A lease with no family this network routes: an IPv6-only host's in an IPv4-only network, or
 * an IPv4-only host's in an IPv6-only one (leftovers of a config change; never in a dual-stack network).
 */
export function noCommonFamily(lease: Lease, network: NetworkConfig): Refusal {
  const refused = network.ipv4
    ? `lease ${lease.key} is IPv6-only (no IPv4 subnet), and the network is IPv4-only (EnableIPv6 is off)`
    : `lease ${lease.key} has no IPv6 subnet, and the network is IPv6-only (EnableIPv4: false)`;
  return { refused, level: "warn" };
}
