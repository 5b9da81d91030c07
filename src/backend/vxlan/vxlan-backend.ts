import type { BackendContext, BackendFactory, BackendRegistration } from "../backend.js";
import { KernelPeerBackend, type DeviceCheck } from "../kernel-peer-backend.js";
import type { Refusal } from "../peer-table.js";
import { Kernel, type RouteState } from "../../kernel/kernel.js";
import type { KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { formatIpv4 } from "../../net/ipv4.js";
import type { Lease } from "../../lease/types.js";
import { formatVxlanBackendData, parseVxlanBackendData, type VxlanBackendData } from "./backend-data.js";
import { ensureVxlanAddress, ensureVxlanDevice, type VxlanDeviceSpec } from "./device.js";
import { VXLAN_OVERHEAD, parseVxlanOptions, vxlanDeviceName, type VxlanOptions } from "./options.js";
import { createUserspaceVxlanBackend, validateUserspaceVxlanOptions } from "../vxlan-userspace/vxlan-userspace-backend.js";
import { errorMessage } from "../../errors/error-message.js";

/**
 * The kernel vxlan backend, flannel.<VNI> as flannel programs it (flannel-compat §6):
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

export class VxlanBackend extends KernelPeerBackend<Peer> {
  private readonly options: VxlanOptions;
  private readonly spec: VxlanDeviceSpec;

  constructor(context: BackendContext, kernel: Kernel = new Kernel()) {
    super("vxlan", context, kernel);
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
  }

  get deviceName(): string {
    return this.spec.name;
  }

  async register(): Promise<BackendRegistration> {
    return this.run(async () => {
      const { mac } = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger);
      return {
        attrs: { backendType: "vxlan", backendData: formatVxlanBackendData({ vni: this.options.vni, vtepMAC: mac }) },
        mtu: this.spec.mtu,
      };
    });
  }

  protected needsRoutes(): boolean {
    return this.options.directRouting;
  }

  protected override async prepareOwnLease(own: Lease): Promise<void> {
    await ensureVxlanAddress(this.kernel, this.spec.name, own.subnet, this.context.network.network);
    this.context.logger.info({ device: this.spec.name, subnet: own.subnet.toString() }, "vxlan device addressed");
  }

  protected peerObjects(peer: Peer): KernelObject[] {
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
  protected override async checkDevice(own: Lease | undefined, dryRun: boolean): Promise<DeviceCheck> {
    const device = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger, dryRun);
    const deviceAbsent = device.absent;
    const changes = [...device.changes];
    if (own && !deviceAbsent) {
      changes.push(...(await ensureVxlanAddress(this.kernel, this.spec.name, own.subnet, this.context.network.network, dryRun)));
    }
    return { changes, deviceAbsent };
  }

  protected async actualObjects(own: Lease, routes: readonly RouteState[]): Promise<KernelObject[]> {
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

  protected classify(lease: Lease, routes: readonly RouteState[]): Peer | Refusal {
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
