import type { NetworkConfig } from "../config/network-config.js";
import type { ExternalInterface } from "../config/external-interface.js";
import type { Lease } from "../lease/types.js";
import type { Ipv4Subnet } from "../net/ipv4.js";
import type { Refusal } from "./peer-table.js";

/**
 * The IPv4 half of leases and of the network, for the backends that need one: the userspace
 * ones (udp, userspace vxlan, wireguard) carry IPv4 always, so they refuse an IPv6-only
 * network at start (refuseIpv6OnlyNetwork) and an IPv6-only peer lease as a peer.
 */

/** Throws, naming the backend and EnableIPv4, when the network is IPv6-only. */
export function refuseIpv6OnlyNetwork(network: NetworkConfig, backend: string): void {
  if (network.ipv4) return;
  throw new Error(
    `${backend}: the network is IPv6-only (EnableIPv4: false), and the ${backend} backend always carries IPv4 over its TUN device; ` +
      'use "Backend": {"Type": "vxlan"} (the kernel one) or {"Type": "host-gw"} for an IPv6-only network, or enable IPv4 (drop "EnableIPv4": false and give a Network)',
  );
}

/** The network's IPv4 Network; the backend refused an IPv6-only network before it got here. */
export function ipv4NetworkOf(network: NetworkConfig, backend: string): Ipv4Subnet {
  if (!network.ipv4) refuseIpv6OnlyNetwork(network, backend);
  return (network.ipv4 as NonNullable<NetworkConfig["ipv4"]>).network;
}

/**
 * The external interface's IPv4 address and PublicIP on a network with IPv4: interface selection
 * requires one there, so a missing one is a bug in the caller.
 */
export function externalIpv4(external: ExternalInterface, backend: string): { address: string; publicIP: string } {
  const { address, publicIP } = external;
  if (address === undefined || publicIP === undefined) {
    throw new Error(`${backend}: the network leases IPv4 but the external interface ${external.name} has no IPv4 address; give it one or pick another with --iface`);
  }
  return { address, publicIP };
}

/** The own lease's IPv4 subnet on a network with IPv4; a lease without one is the control plane's bug. */
export function ownIpv4Subnet(own: Lease): Ipv4Subnet {
  if (own.subnet === undefined) {
    throw new Error(`the network leases IPv4 (EnableIPv4) but the own lease ${own.key} has no IPv4 subnet; it must be re-acquired with one`);
  }
  return own.subnet;
}

/** A peer lease's IPv4 subnet, or a refusal for an IPv6-only host's lease (which an IPv4 data path cannot reach). */
export function peerIpv4Subnet(lease: Lease, backend: string): Ipv4Subnet | Refusal {
  if (lease.subnet !== undefined) return lease.subnet;
  return { refused: `lease ${lease.key} is IPv6-only (no IPv4 subnet), and the ${backend} backend carries IPv4`, level: "warn" };
}
