import type { BackendContext, BackendFactory, BackendRegistration } from "../backend.js";
import { KernelPeerBackend } from "../kernel-peer-backend.js";
import type { Refusal } from "../peer-table.js";
import { Kernel, type RouteState } from "../../kernel/kernel.js";
import type { KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import type { Lease } from "../../lease/types.js";

/**
 * host-gw (flannel-compat §7): no device, no encapsulation; each peer's subnet is routed via the peer's
 * PublicIP on the external interface. That only works when every host shares one L2 segment,
 * so a peer whose PublicIP is not on-link is refused (logged once, counted, listed by doctor)
 * instead of leaving the kernel to reject the route with "Nexthop has invalid gateway".
 */
export class HostGwBackend extends KernelPeerBackend<Lease> {
  constructor(context: BackendContext, kernel: Kernel = new Kernel()) {
    super("host-gw", context, kernel);
  }

  async register(): Promise<BackendRegistration> {
    const { external } = this.context;
    if (external.publicIP !== external.address) {
      throw new Error(
        `host-gw: the public IP ${external.publicIP} differs from ${external.name}'s address ${external.address}; ` +
          "host-gw routes peers straight to that address, so NAT is not supported: drop --public-ip or use the vxlan backend",
      );
    }
    return { attrs: { backendType: "host-gw" }, mtu: external.mtu };
  }

  protected needsRoutes(): boolean {
    return true;
  }

  protected peerObjects(lease: Lease): KernelObject[] {
    return [{ kind: "route", destination: lease.subnet, gateway: lease.attrs.publicIP, device: this.context.external.name, onlink: false }];
  }

  protected async actualObjects(own: Lease, routes: readonly RouteState[]): Promise<KernelObject[]> {
    const device = this.context.external.name;
    return ownedRoutes(routes, { network: this.context.network.network, ownSubnet: own.subnet, overlayDevices: [], underlayDevices: [device] });
  }

  protected classify(lease: Lease, routes: readonly RouteState[]): Lease | Refusal {
    const device = this.context.external.name;
    const onLink = onLinkDevice(lease.attrs.publicIP, routes, this.context.network.network);
    if (onLink === device) return lease;
    return {
      refused:
        `host-gw cannot route it: its host ${lease.attrs.publicIP} is not on-link from ${device}` +
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
