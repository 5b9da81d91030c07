import { parseUdpOptions } from "../backend/udp/options.js";
import { VXLAN_OVERHEAD, parseVxlanOptions } from "../backend/vxlan/options.js";
import { UDP_OVERHEAD } from "../backend/udp/options.js";
import type { BackendConfig } from "../config/network-config.js";
import type { Lease } from "../lease/types.js";
import { formatIpv4 } from "../net/ipv4.js";
import type { ProbeTarget } from "./peer-probe.js";

/** How the network's backend carries the overlay, as far as probing cares. */
export interface Encapsulation {
  /** undefined for host-gw (and alloc): nothing to cross but the underlay. */
  label: string | undefined;
  /** Bytes the encapsulation adds: interface MTU − FLANNEL_MTU. */
  overheadBytes: number;
}

export function encapsulationOf(backend: BackendConfig): Encapsulation {
  switch (backend.type) {
    case "vxlan":
    case "vxlan-userspace":
      return { label: `UDP ${parseVxlanOptions(backend.options).port}`, overheadBytes: VXLAN_OVERHEAD };
    case "udp":
      return { label: `UDP ${parseUdpOptions(backend.options).port}`, overheadBytes: UDP_OVERHEAD };
    default:
      return { label: undefined, overheadBytes: 0 };
  }
}

/**
 * One target per peer lease. The overlay address is the subnet's network address: the /32 on the
 * peer's flannel.N (vxlan) or its TUN's address (udp, vxlan-userspace), so an echo to it crosses
 * the encapsulation and the port and is answered by the peer host itself.
 * IPv4 only: an IPv6-only peer (no IPv4 subnet) is not probed.
 */
export function probeTargets(peers: readonly Lease[], encapsulation: Encapsulation): ProbeTarget[] {
  return peers.flatMap(({ subnet, attrs }) =>
    subnet
      ? [
          {
            subnet: subnet.toString(),
            publicIP: attrs.publicIP,
            overlayAddress: encapsulation.label === undefined ? undefined : formatIpv4(subnet.network),
            encapsulation: encapsulation.label ?? "none",
          },
        ]
      : [],
  );
}
