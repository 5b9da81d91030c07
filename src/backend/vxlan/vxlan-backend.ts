import type { Backend, BackendContext, BackendFactory, BackendRegistration, ReconcileReport } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { Kernel, type RouteState } from "../../kernel/kernel.js";
import type { KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { PeerProgrammer, type DeviceCheck } from "../peer-programmer.js";
import type { Refusal } from "../peer-set.js";
import { formatIpv4 } from "../../net/ipv4.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { formatVxlanBackendData, parseVxlanBackendData, type VxlanBackendData } from "./backend-data.js";
import { ensureVxlanAddress, ensureVxlanDevice, type VxlanDeviceSpec } from "./device.js";
import { VXLAN_OVERHEAD, parseVxlanOptions, vxlanDeviceName, type VxlanOptions } from "./options.js";
import { createUserspaceVxlanBackend, validateUserspaceVxlanOptions } from "../vxlan-userspace/vxlan-userspace-backend.js";
import { errorMessage } from "../../errors/error-message.js";

/**
 * The kernel vxlan backend, flannel.<VNI> as flannel programs it (spec §6):
 *   - register(): the device exists with a stable MAC; the lease advertises {"VNI","VtepMAC"};
 *   - activate(): the own subnet's network address /32 on the device;
 *   - per peer: permanent neighbour (subnet address → VtepMAC), FDB (VtepMAC → PublicIP) and
 *     `subnet via <subnet address> dev flannel.N onlink`; with DirectRouting and an on-link
 *     peer, `subnet via PublicIP` on the underlay instead;
 *   - reconcile(): device, address and every peer object re-checked against the lease set;
 *   - stop(): leaves everything in place, so a restart does not interrupt traffic.
 */

interface Peer {
  lease: Lease;
  data: VxlanBackendData;
  /** DirectRouting decided this peer is on-link: plain route via its PublicIP. */
  direct: boolean;
}

export class VxlanBackend implements Backend, LeaseSetLoader {
  readonly type = "vxlan";
  private readonly options: VxlanOptions;
  private readonly spec: VxlanDeviceSpec;
  private readonly programmer: PeerProgrammer<Peer>;

  constructor(
    private readonly context: BackendContext,
    private readonly kernel: Kernel = new Kernel(),
  ) {
    this.options = parseVxlanOptions(context.options);
    const underlayMtu = this.options.mtu ?? context.external.mtu;
    this.spec = {
      name: vxlanDeviceName(this.options.vni),
      vni: this.options.vni,
      port: this.options.port,
      local: context.external.address,
      underlay: context.external.name,
      learning: this.options.learning,
      gbp: this.options.gbp,
      mtu: underlayMtu - VXLAN_OVERHEAD,
      txChecksumOffload: this.options.txChecksumOffload,
    };
    this.programmer = new PeerProgrammer<Peer>({
      type: this.type,
      kernel,
      logger: context.logger,
      metrics: context.metrics,
      ownPublicIP: context.external.publicIP,
      needsRoutes: this.options.directRouting,
      classify: (lease, routes) => this.classify(lease, routes),
      objects: (peer) => this.peerObjects(peer),
      actual: (own, routes) => this.actualObjects(own, routes),
      checkDevice: (own, dryRun) => this.checkDevice(own, dryRun),
    });
  }

  get deviceName(): string {
    return this.spec.name;
  }

  async register(): Promise<BackendRegistration> {
    return this.programmer.run(async () => {
      const { mac } = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger);
      return {
        attrs: { backendType: "vxlan", backendData: formatVxlanBackendData({ vni: this.options.vni, vtepMAC: mac }) },
        mtu: this.spec.mtu,
      };
    });
  }

  activate(ownLease: Lease): Promise<void> {
    return this.programmer.activate(ownLease, async () => {
      await ensureVxlanAddress(this.kernel, this.spec.name, ownLease.subnet, this.context.network.network);
      this.context.logger.info({ device: this.spec.name, subnet: ownLease.subnet.toString() }, "vxlan device addressed");
    });
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

  /** What the kernel must hold for the current peer set. */
  desiredObjects(): KernelObject[] {
    return this.programmer.desiredObjects();
  }

  private peerObjects(peer: Peer): KernelObject[] {
    const device = this.spec.name;
    const subnet = peer.lease.subnet;
    const publicIP = peer.lease.attrs.publicIP;
    if (peer.direct) return [{ kind: "route", destination: subnet, gateway: publicIP, device: this.context.external.name, onlink: false }];
    const address = formatIpv4(subnet.network);
    return [
      { kind: "neigh", address, mac: peer.data.vtepMAC, device },
      { kind: "fdb", mac: peer.data.vtepMAC, device, destination: publicIP },
      { kind: "route", destination: subnet, gateway: address, device, onlink: true },
    ];
  }

  /** flannel.N as configured, then (unless it is missing in a dry run) the own subnet address on it. */
  private async checkDevice(own: Lease | undefined, dryRun: boolean): Promise<DeviceCheck> {
    const device = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger, dryRun);
    const deviceAbsent = dryRun && device.changes.some((change) => /^(create|recreate) device/.test(change));
    const changes = [...device.changes];
    if (own && !deviceAbsent) {
      changes.push(...(await ensureVxlanAddress(this.kernel, this.spec.name, own.subnet, this.context.network.network, dryRun)));
    }
    return { changes, deviceAbsent };
  }

  private async actualObjects(own: Lease, routes: readonly RouteState[]): Promise<KernelObject[]> {
    const device = this.spec.name;
    const [neighbours, fdb] = await Promise.all([this.kernel.readPermanentNeighbours(device), this.kernel.readRemoteFdb(device)]);
    const owned = ownedRoutes(routes, {
      network: this.context.network.network,
      ownSubnet: own.subnet,
      overlayDevices: [device],
      underlayDevices: this.options.directRouting ? [this.context.external.name] : [],
    });
    return [...owned, ...neighbours, ...fdb];
  }

  private classify(lease: Lease, routes: readonly RouteState[]): Peer | Refusal {
    let data: VxlanBackendData;
    try {
      data = parseVxlanBackendData(lease.attrs.backendData, lease.key);
    } catch (error) {
      return { refused: `unusable vxlan BackendData: ${errorMessage(error)}`, level: "warn" };
    }
    const direct = this.options.directRouting && onLinkDevice(lease.attrs.publicIP, routes, this.context.network.network) !== undefined;
    return { lease, data, direct };
  }
}

export const vxlanBackend: BackendFactory = {
  type: "vxlan",
  validateOptions(options) {
    if (parseVxlanOptions(options).userspace) validateUserspaceVxlanOptions(options);
  },
  create(context) {
    // "Userspace": true keeps the lease and wire format but swaps the kernel device for weft's engine.
    if (parseVxlanOptions(context.options).userspace) return createUserspaceVxlanBackend(context);
    return new VxlanBackend(context);
  },
};
