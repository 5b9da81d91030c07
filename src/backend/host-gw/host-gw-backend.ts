import type { BackendContext, BackendFactory, BackendRegistration } from "../backend.js";
import { KernelPeerBackend } from "../kernel-peer-backend.js";
import type { Refusal } from "../peer-table.js";
import { Kernel, type RouteSnapshot, type RouteState } from "../../kernel/kernel.js";
import { canonicalIp, type KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import type { IpSubnet } from "../../net/ip-subnet.js";
import type { Lease } from "../../lease/types.js";
import { noCommonFamily, ownIpv6Subnet, peerIpv6, type PeerIpv6 } from "../dual-stack.js";
import { ownIpv4Subnet } from "../ipv4-half.js";
import type { Ipv4Subnet } from "../../net/ipv4.js";

/**
 * host-gw (flannel-compat §7): no device, no encapsulation; each peer's subnet is routed via the peer's
 * PublicIP on the external interface, and on a dual-stack network its IPv6 subnet via its
 * PublicIPv6 (a single-stack peer gets the IPv4 route only, as flanneld). That only works when
 * every host shares one L2 segment, so a peer whose PublicIP (or PublicIPv6) is not on-link is
 * refused (logged once, counted, listed by doctor) instead of leaving the kernel to reject the
 * route with "Nexthop has invalid gateway".
 * An IPv6-only network (EnableIPv4: false) routes only the IPv6 subnets, as flanneld.
 */

interface Peer {
  lease: Lease;
  /** The IPv4 subnet, routed via PublicIP; absent in an IPv6-only network or for an IPv6-only peer. */
  v4?: Ipv4Subnet;
  v6?: PeerIpv6;
}

export class HostGwBackend extends KernelPeerBackend<Peer> {
  constructor(context: BackendContext, kernel: Kernel = new Kernel()) {
    super("host-gw", context, kernel);
  }

  async register(): Promise<BackendRegistration> {
    const { external } = this.context;
    if (this.context.network.ipv4 && external.publicIP !== external.address) {
      throw new Error(
        `host-gw: the public IP ${external.publicIP} differs from ${external.name}'s address ${external.address}; ` +
          "host-gw routes peers straight to that address, so NAT is not supported: drop --public-ip or use the vxlan backend",
      );
    }
    if (this.dualStack) {
      if (external.addressV6 === undefined) {
        throw new Error(
          `host-gw: the network is dual-stack (EnableIPv6) but ${external.name} has no IPv6 address; peers route the IPv6 subnet to it: add one or pick another --iface`,
        );
      }
      const address = canonicalIp(external.addressV6, `${external.name} IPv6 address`, 6);
      const advertised = canonicalIp(external.publicIPv6 ?? external.addressV6, "--public-ipv6", 6);
      if (advertised !== address) {
        throw new Error(
          `host-gw: the public IPv6 ${advertised} differs from ${external.name}'s address ${address}; ` +
            "host-gw routes peers straight to that address, so NAT is not supported: drop --public-ipv6 or use the vxlan backend",
        );
      }
    }
    return { attrs: { backendType: "host-gw" }, mtu: external.mtu };
  }

  protected needsRoutes(): boolean {
    return true;
  }

  protected override async prepareOwnLease(own: Lease): Promise<void> {
    if (this.dualStack) ownIpv6Subnet(own); // fails before any peer is programmed against an own lease without IPv6
  }

  protected peerObjects(peer: Peer): KernelObject[] {
    const device = this.context.external.name;
    const routes: KernelObject[] = [];
    if (peer.v4) routes.push({ kind: "route", destination: peer.v4, gateway: peer.lease.attrs.publicIP, device, onlink: false });
    if (peer.v6) routes.push({ kind: "route", destination: peer.v6.subnet, gateway: peer.v6.publicIPv6, device, onlink: false });
    return routes;
  }

  protected async actualObjects(own: Lease, routes: RouteSnapshot): Promise<KernelObject[]> {
    const device = this.context.external.name;
    const scope = { overlayDevices: [], underlayDevices: [device] };
    const network4 = this.context.network.ipv4;
    const owned = network4 ? ownedRoutes(routes.v4, { ...scope, network: network4.network, ownSubnet: ownIpv4Subnet(own) }) : [];
    const network6 = this.context.network.ipv6;
    if (!network6) return owned;
    return [...owned, ...ownedRoutes(routes.v6, { ...scope, network: network6.network, ownSubnet: ownIpv6Subnet(own) })];
  }

  protected classify(lease: Lease, routes: RouteSnapshot): Peer | Refusal {
    const network4 = this.context.network.ipv4;
    const v4 = network4 && lease.subnet;
    if (network4 && v4) {
      const refusal = this.onLinkRefusal(lease.attrs.publicIP, routes.v4, network4.network);
      if (refusal) return refusal;
    }
    const network6 = this.context.network.ipv6;
    const peer: Peer = v4 ? { lease, v4 } : { lease };
    if (!network6) return v4 ? peer : noCommonFamily(lease, this.context.network);
    const v6 = peerIpv6(lease);
    // A single-stack IPv4 host: IPv4 only (in an IPv6-only network, nothing to route).
    if (v6 === undefined) return v4 ? peer : noCommonFamily(lease, this.context.network);
    if ("refused" in v6) return v6;
    return this.onLinkRefusal(v6.publicIPv6, routes.v6, network6.network) ?? { ...peer, v6 };
  }

  /** Why a peer at `address` cannot be routed directly, or undefined when it can. */
  private onLinkRefusal(address: string, routes: readonly RouteState[], network: IpSubnet): Refusal | undefined {
    const device = this.context.external.name;
    const onLink = onLinkDevice(address, routes, network);
    if (onLink === device) return undefined;
    return {
      refused:
        `host-gw cannot route it: its host ${address} is not on-link from ${device}` +
        (onLink ? ` (it is on ${onLink})` : " (reached through a gateway)") +
        "; host-gw needs every host on one L2 segment: use the vxlan backend (DirectRouting keeps direct routes where possible)",
      level: "error",
    };
  }
}

export const hostGwBackend: BackendFactory = {
  type: "host-gw",
  validateOptions() {},
  create: (context) => new HostGwBackend(context),
};
