import type { Backend, BackendContext, BackendFactory, BackendRegistration, ReconcileReport } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { Kernel, type RouteState } from "../../kernel/kernel.js";
import type { KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { PeerProgrammer } from "../peer-programmer.js";
import type { Refusal } from "../peer-set.js";
import type { Lease, PeerEvent } from "../../lease/types.js";

/**
 * host-gw (spec §7): no device, no encapsulation; each peer's subnet is routed via the peer's
 * PublicIP on the external interface. That only works when every host shares one L2 segment,
 * so a peer whose PublicIP is not on-link is refused (logged once, counted, listed by doctor)
 * instead of leaving the kernel to reject the route with "Nexthop has invalid gateway".
 */
export class HostGwBackend implements Backend, LeaseSetLoader {
  readonly type = "host-gw";
  private readonly programmer: PeerProgrammer<Lease>;

  constructor(
    private readonly context: BackendContext,
    kernel: Kernel = new Kernel(),
  ) {
    const device = context.external.name;
    this.programmer = new PeerProgrammer<Lease>({
      type: this.type,
      kernel,
      logger: context.logger,
      metrics: context.metrics,
      ownPublicIP: context.external.publicIP,
      needsRoutes: true,
      classify: (lease, routes) => this.classify(lease, routes),
      objects: (lease) => [{ kind: "route", destination: lease.subnet, gateway: lease.attrs.publicIP, device, onlink: false }],
      actual: async (own, routes) =>
        ownedRoutes(routes, { network: context.network.network, ownSubnet: own.subnet, overlayDevices: [], underlayDevices: [device] }),
    });
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

  activate(ownLease: Lease): Promise<void> {
    return this.programmer.activate(ownLease);
  }

  applyPeers(events: readonly PeerEvent[]): Promise<void> {
    return this.programmer.applyPeers(events);
  }

  loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    return this.programmer.loadLeaseSet(ownLease, peers);
  }

  refusedPeers(): string[] {
    return this.programmer.refusedPeers();
  }

  reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.programmer.reconcile(options.dryRun);
  }

  stop(): Promise<void> {
    return this.programmer.stop();
  }

  desiredObjects(): KernelObject[] {
    return this.programmer.desiredObjects();
  }

  private classify(lease: Lease, routes: readonly RouteState[]): Lease | Refusal {
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
