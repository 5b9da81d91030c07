import type { Backend, BackendContext, BackendFactory } from "../backend.js";
import { EngineBackend, type EnginePlacement } from "../userspace/engine-backend.js";
import type { Lease } from "../../lease/types.js";
import type { PeerRoute } from "../../engine/engine.js";
import { engineQueueOptions } from "../userspace/queue-options.js";
import type { Refusal } from "../peer-table.js";
import { peerIpv4Subnet, refuseIpv6OnlyNetwork } from "../ipv4-half.js";
import { UDP_OVERHEAD, parseUdpOptions } from "./options.js";

/**
 * flannel's udp backend (flannel-compat §5) on weft's native engine: a TUN device (flannel0) whose
 * packets travel as the whole inner IPv4 packet in UDP to the peer's PublicIP, same port on
 * both ends, TTL decremented on both paths; ICMP net-unreachable for unknown destinations.
 *
 * Peers: flanneld's udp backend routes to every lease whatever its BackendType. weft routes
 * only to udp leases (no BackendType, or "udp"): a host running another backend does not
 * listen on the udp port, so sending there only blackholes traffic. The PeerTable refuses such
 * leases (logged once, counted in weft_backend_refused_peers); every other lease is served.
 *
 * IPv4 only, as flannel's udp backend: with EnableIPv6 it warns at start and forwards no IPv6
 * (the engine's udp mode drops inner IPv6 as `inside.drop.not_ipv4`).
 */
export function udpPeerRoute(lease: Lease): PeerRoute | Refusal {
  const subnet = peerIpv4Subnet(lease, "udp");
  return "refused" in subnet ? subnet : { subnet, publicIP: lease.attrs.publicIP };
}

export function createUdpBackend(context: BackendContext, placement?: EnginePlacement): Backend {
  refuseIpv6OnlyNetwork(context.network, "udp");
  const options = parseUdpOptions(context.options);
  if (context.network.enableIPv6) {
    // flanneld's udp backend is IPv4-only too; say so where an operator looks, once, at start.
    context.logger.warn(
      { backend: "udp" },
      "udp backend: IPv4 only, as flannel's: EnableIPv6 is ignored, no IPv6 is forwarded; " +
        'use "Backend": {"Type": "vxlan"} (kernel or "Userspace": true) for IPv6',
    );
  }
  const mtu = context.external.mtu - UDP_OVERHEAD;
  return new EngineBackend(
    "udp",
    context,
    async () => ({
      // udp leases carry only PublicIP: no BackendType, no BackendData (flannel-compat §1.3).
      registration: { attrs: {}, mtu },
      engine: { mode: "udp", tunName: options.tunName, mtu, port: options.port, ...engineQueueOptions(options) },
      peerRoute: udpPeerRoute,
      handover: true,
    }),
    placement,
  );
}

export const udpBackend: BackendFactory = {
  type: "udp",
  validateOptions(options) {
    parseUdpOptions(options);
  },
  validateNetwork: (network) => refuseIpv6OnlyNetwork(network, "udp"),
  create: (context) => createUdpBackend(context),
};
