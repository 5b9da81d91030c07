import { parseUdpOptions } from "../backend/udp/options.js";
import { VXLAN_OVERHEAD, VXLAN_V6_OVERHEAD, parseVxlanOptions } from "../backend/vxlan/options.js";
import { UDP_OVERHEAD } from "../backend/udp/options.js";
import type { BackendConfig } from "../config/network-config.js";
import type { Lease } from "../lease/types.js";
import { NO_PUBLIC_IP } from "../lease/host-address.js";
import { formatIpv4 } from "../net/ipv4.js";
import type { IpFamily } from "../net/ip-subnet.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import type { ProbeTarget } from "./peer-probe.js";

/** How the network's backend carries the overlay of one family, as far as probing cares. */
export interface Encapsulation {
  /** undefined for host-gw (and alloc): nothing to cross but the underlay. */
  label: string | undefined;
  /** Bytes the encapsulation adds to each inner packet over this family's underlay. */
  overheadBytes: number;
}

function isVxlan(backend: BackendConfig): boolean {
  return backend.type === "vxlan" || backend.type === "vxlan-userspace";
}

/** The encapsulation over an IPv4 (PublicIP) or IPv6 (PublicIPv6) underlay: vxlan costs 50 bytes over IPv4, 70 over IPv6. */
export function encapsulationOf(backend: BackendConfig, family: IpFamily = 4): Encapsulation {
  if (isVxlan(backend)) return { label: `UDP ${parseVxlanOptions(backend.options).port}`, overheadBytes: family === 6 ? VXLAN_V6_OVERHEAD : VXLAN_OVERHEAD };
  if (backend.type === "udp") return { label: `UDP ${parseUdpOptions(backend.options).port}`, overheadBytes: UDP_OVERHEAD };
  return { label: undefined, overheadBytes: 0 };
}

/**
 * Whether the backend carries a lease's IPv6 subnet, so there is an IPv6 path to probe: vxlan
 * (flannel-v6.N, or the userspace engine's IPv6 underlay) and host-gw (routes via PublicIPv6).
 * udp stays IPv4 as flannel's does; wireguard has no IPv6 in weft yet.
 */
export function carriesIpv6(backend: BackendConfig): boolean {
  return isVxlan(backend) || backend.type === "host-gw";
}

/** The underlay MTU a DF echo of the interface size tests: Backend.MTU replaces the interface's for vxlan, as the daemon does. */
export function probeUnderlayMtu(backend: BackendConfig, interfaceMtu: number): number {
  return (isVxlan(backend) ? parseVxlanOptions(backend.options).mtu : undefined) ?? interfaceMtu;
}

/**
 * The probe targets of the peer leases: per lease one per family it holds and the backend
 * carries, the lease's IPv4 subnet (towards PublicIP) first, then its IPv6 subnet (towards
 * PublicIPv6). The overlay address is the subnet's network address: the /32 (IPv6: /128) on the
 * peer's flannel.N / flannel-v6.N (vxlan) or its TUN's address (udp, vxlan-userspace), so an echo
 * to it crosses the encapsulation and the port and is answered by the peer host itself. A
 * lease without a PublicIPv6 (a single-stack peer in a dual-stack network) has no IPv6 path.
 */
export function probeTargets(peers: readonly Lease[], backend: BackendConfig): ProbeTarget[] {
  const v4 = encapsulationOf(backend, 4);
  const v6 = encapsulationOf(backend, 6);
  return peers.flatMap(({ subnet, ipv6Subnet, attrs }) => {
    const targets: ProbeTarget[] = [];
    if (subnet && attrs.publicIP !== NO_PUBLIC_IP) {
      targets.push({
        subnet: subnet.toString(),
        publicIP: attrs.publicIP,
        overlayAddress: v4.label === undefined ? undefined : formatIpv4(subnet.network),
        encapsulation: v4.label ?? "none",
        overheadBytes: v4.overheadBytes,
      });
    }
    const publicIPv6 = attrs.publicIPv6 === null ? undefined : tryParseIpv6(attrs.publicIPv6);
    if (ipv6Subnet && publicIPv6 !== undefined && carriesIpv6(backend)) {
      targets.push({
        subnet: ipv6Subnet.toString(),
        publicIP: formatIpv6(publicIPv6),
        overlayAddress: v6.label === undefined ? undefined : formatIpv6(ipv6Subnet.network),
        encapsulation: v6.label ?? "none",
        overheadBytes: v6.overheadBytes,
      });
    }
    return targets;
  });
}
