import type { Lease } from "../../lease/types.js";
import type { PeerRoute } from "../../engine/engine.js";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import type { Ipv6Subnet } from "../../net/ipv6.js";
import type { Refusal } from "../peer-table.js";
import { errorMessage } from "../../errors/error-message.js";
import { peerIpv4Subnet } from "../ipv4-half.js";
import { peerIpv6 } from "../dual-stack.js";
import { parseWireguardBackendData } from "./backend-data.js";
import { selectEndpointFamily, type OwnUnderlay } from "./device-plan.js";
import type { WireguardMode } from "./options.js";

/** One family of a device-path peer: what its lease advertises for it, ports still as written. */
export interface WireguardPeerHalf<S extends Ipv4Subnet | Ipv6Subnet> {
  subnet: S;
  /** PublicIP, or PublicIPv6 in canonical form (as wg prints it back). */
  address: string;
  publicKey: string;
  /** undefined: the lease has no Port (the device's own port is assumed, as flanneld does). */
  port: number | undefined;
}

/**
 * A lease as the device path serves it (kernel, wireguard-go): its IPv4 half from BackendData and,
 * on a dual-stack network, its IPv6 half from BackendV6Data. Which device carries which half,
 * and over which endpoint, is device-plan.ts's decision.
 */
export interface WireguardDevicePeer {
  /** The lease's etcd key, for messages. */
  lease: string;
  v4?: WireguardPeerHalf<Ipv4Subnet>;
  /** undefined: a single-stack host (no IPv6 subnet, or no BackendV6Data: e.g. a weft host without an external IPv6 address). */
  v6?: WireguardPeerHalf<Ipv6Subnet>;
}

/**
 * The device-path peer of a wireguard lease (the PeerTable has checked its type), or why it
 * cannot be served. `ipv6`: the network is dual-stack. As the kernel backends do (dual-stack.ts),
 * a lease with an IPv6 subnet and BackendV6Data but no usable PublicIPv6 is refused as a whole,
 * and so is one whose BackendV6Data does not parse: the IPv6 state it asks for cannot be built.
 * A lease with an IPv6 subnet but no BackendV6Data at all is served over IPv4 only.
 */
export function wireguardDevicePeer(ipv6: boolean) {
  return (lease: Lease): WireguardDevicePeer | Refusal => {
    try {
      const subnet = peerIpv4Subnet(lease, "wireguard");
      if ("refused" in subnet) return subnet; // an IPv6-only lease: the device path needs an IPv4 network (wireguard-backend.ts)
      const data = parseWireguardBackendData(lease.attrs.backendData, lease.key);
      const peer: WireguardDevicePeer = { lease: lease.key, v4: { subnet, address: lease.attrs.publicIP, publicKey: data.publicKey, port: data.port } };
      const v6Data = lease.attrs.backendV6Data;
      if (!ipv6 || lease.ipv6Subnet === undefined || v6Data === undefined || v6Data === null) return peer;
      const v6 = peerIpv6(lease);
      if (v6 === undefined) return peer;
      if ("refused" in v6) return v6;
      const dataV6 = parseWireguardBackendData(v6Data, lease.key, "BackendV6Data");
      return { ...peer, v6: { subnet: v6.subnet, address: v6.publicIPv6, publicKey: dataV6.publicKey, port: dataV6.port } };
    } catch (error) {
      return { refused: errorMessage(error), level: "warn" };
    }
  };
}

/**
 * The userspace engine's route for a wireguard lease: its subnet (the AllowedIPs), PublicIP and
 * Port (the endpoint; our own ListenPort when an older flanneld wrote no Port) and PublicKey and,
 * on a dual-stack network (`ipv6`), its IPv6 half. Which leases get an IPv6 half, and which are
 * refused, is wireguardDevicePeer's rule. By Mode, as the device path plans its devices:
 *   - "separate": the IPv6 half is the engine's IPv6 interface's peer: BackendV6Data's PublicKey,
 *     endpoint [PublicIPv6]:Port (our ListenPortV6 when absent), AllowedIPs its IPv6 subnet;
 *   - "auto", "ipv4", "ipv6": one peer with both subnets, reached at PublicIP or [PublicIPv6]
 *     (flanneld's selectMode for "auto"; a single-stack peer over IPv4), on BackendData's port.
 */
export function wireguardEnginePeerRoute(
  ports: { listenPort: number; listenPortV6: number },
  ipv6: boolean,
  carriage: { mode: WireguardMode; own: OwnUnderlay } = { mode: "separate", own: { ipv4: undefined, ipv6: undefined } },
) {
  const devicePeer = wireguardDevicePeer(ipv6);
  return (lease: Lease): PeerRoute | Refusal => {
    const peer = devicePeer(lease);
    if ("refused" in peer) return peer;
    const v4 = peer.v4;
    if (!v4) return { refused: `${lease.key}: no IPv4 subnet, which the wireguard backend needs`, level: "warn" };
    const route: PeerRoute = { subnet: v4.subnet, publicIP: v4.address, publicKey: v4.publicKey, port: v4.port ?? ports.listenPort };
    const v6 = peer.v6;
    if (!v6) return route;
    if (carriage.mode === "separate") {
      return { ...route, ipv6: { subnet: v6.subnet, publicIPv6: v6.address, publicKey: v6.publicKey, port: v6.port ?? ports.listenPortV6 } };
    }
    const family = carriage.mode === "auto" ? selectEndpointFamily(peer, carriage.own) : carriage.mode;
    const reachedOverIpv6 = family === "ipv6";
    return {
      ...route,
      // The one interface's key: the chosen half's (flanneld writes the same key in both).
      publicKey: reachedOverIpv6 ? v6.publicKey : v4.publicKey,
      port: v4.port ?? v6.port ?? ports.listenPort,
      ipv6: { subnet: v6.subnet, publicIPv6: v6.address },
      ...(reachedOverIpv6 ? { endpointIPv6: true } : {}),
    };
  };
}
