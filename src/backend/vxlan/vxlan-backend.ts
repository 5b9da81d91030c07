import type { BackendContext, BackendFactory, BackendRegistration } from "../backend.js";
import { KernelPeerBackend, type DeviceCheck } from "../kernel-peer-backend.js";
import type { Refusal } from "../peer-table.js";
import { Kernel, type RouteSnapshot } from "../../kernel/kernel.js";
import { canonicalIp, type KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { networkAddressText, type IpSubnet } from "../../net/ip-subnet.js";
import type { Ipv6Subnet } from "../../net/ipv6.js";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import { externalIpv4, ownIpv4Subnet, refuseIpv6OnlyNetwork } from "../ipv4-half.js";
import type { Lease } from "../../lease/types.js";
import { formatVxlanBackendData, parseVxlanBackendData, type VxlanBackendData } from "./backend-data.js";
import { ensureVxlanAddress, ensureVxlanDevice, renewVxlanMac, type VxlanDeviceSpec } from "./device.js";
import { VXLAN_OVERHEAD, VXLAN_V6_OVERHEAD, parseVxlanOptions, vxlanDeviceName, vxlanV6DeviceName, type VxlanOptions } from "./options.js";
import { noCommonFamily, ownIpv6Subnet, peerIpv6 } from "../dual-stack.js";
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
 * A dual-stack network (EnableIPv6) adds flannel-v6.<VNI> over the IPv6 underlay, side by side
 * and programmed the same way from the IPv6 half of each lease: its own persisted MAC in
 * BackendV6Data, the own IPv6 subnet's network address /128 on it, and per dual-stack peer the
 * neighbour, FDB entry (to PublicIPv6) and onlink route of its IPv6 subnet. A peer whose lease
 * has no IPv6 subnet (a single-stack host) gets IPv4 only, as flanneld does.
 * An IPv6-only network (EnableIPv4: false) has flannel-v6.<VNI> alone, as flanneld: no flannel.<VNI>,
 * no BackendData (only BackendV6Data), and per peer only the IPv6 objects.
 */

/** One family's half of a peer: the subnet, where its VTEP is and how it is reached. */
interface PeerFamily {
  subnet: IpSubnet;
  publicIP: string;
  data: VxlanBackendData;
  /** DirectRouting decided this peer is on-link: plain route via its public address. */
  direct: boolean;
}

interface Peer {
  /** When both this network and the peer's lease have IPv4. */
  v4?: PeerFamily;
  /** When both this network and the peer's lease have IPv6. */
  v6?: PeerFamily;
}

export class VxlanBackend extends KernelPeerBackend<Peer> {
  private readonly options: VxlanOptions;
  /** flannel.<VNI>, unless the network is IPv6-only. */
  private readonly spec: VxlanDeviceSpec | undefined;
  /** flannel-v6.<VNI>, when the network is dual-stack or IPv6-only. */
  private readonly specV6: VxlanDeviceSpec | undefined;
  /** Set by checkDevice() for the reconcile pass it starts: a dry run found flannel-v6.N missing. */
  private v6DeviceAbsent = false;

  constructor(context: BackendContext, kernel: Kernel = new Kernel()) {
    super("vxlan", context, kernel);
    this.options = parseVxlanOptions(context.options);
    const underlayMtu = this.options.mtu ?? context.external.mtu;
    const device = (name: string, local: string, overhead: number): VxlanDeviceSpec => ({
      name,
      vni: this.options.vni,
      port: this.options.port,
      local,
      underlay: context.external.name,
      learning: this.options.learning,
      gbp: this.options.gbp,
      mtu: underlayMtu - overhead,
      txChecksumOffload: this.options.txChecksumOffload,
    });
    this.spec = context.network.ipv4 ? device(vxlanDeviceName(this.options.vni), externalIpv4(context.external, "vxlan").address, VXLAN_OVERHEAD) : undefined;
    // flannel-v6.N gets what the kernel allows over an IPv6 underlay (options.ts).
    this.specV6 = this.dualStack ? device(vxlanV6DeviceName(this.options.vni), this.localV6(), VXLAN_V6_OVERHEAD) : undefined;
  }

  /** flannel.<VNI>, unless the network is IPv6-only. */
  get deviceName(): string | undefined {
    return this.spec?.name;
  }

  /** flannel-v6.<VNI> on a dual-stack or IPv6-only network. */
  get v6DeviceName(): string | undefined {
    return this.specV6?.name;
  }

  async register(): Promise<BackendRegistration> {
    return this.run(async () => {
      const attrs: BackendRegistration["attrs"] = { backendType: "vxlan" };
      if (this.spec) {
        const { mac } = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger);
        attrs.backendData = formatVxlanBackendData({ vni: this.options.vni, vtepMAC: mac });
      }
      if (this.specV6) {
        const v6 = await ensureVxlanDevice(this.kernel, this.specV6, this.context.stateDir, this.context.logger);
        attrs.backendV6Data = formatVxlanBackendData({ vni: this.options.vni, vtepMAC: v6.mac });
      }
      // One container MTU (FLANNEL_MTU) serves both families, so it is the smaller device's. flanneld
      // keeps E − 50 here, and its containers' IPv6 packets over E − 70 get Packet Too Big.
      const mtus = [this.spec, this.specV6].flatMap((spec) => (spec ? [spec.mtu] : []));
      return { attrs, mtu: Math.min(...mtus) };
    });
  }

  /** Both devices get a new MAC (the clone's state dir gave it both); peers re-program from the re-put lease. */
  async renewVtepMac(): Promise<BackendRegistration["attrs"]> {
    return this.run(async () => {
      const attrs: BackendRegistration["attrs"] = { backendType: "vxlan" };
      const { kernel, context } = this;
      if (this.spec) attrs.backendData = formatVxlanBackendData({ vni: this.options.vni, vtepMAC: await renewVxlanMac(kernel, this.spec, context.stateDir, context.logger) });
      if (this.specV6) attrs.backendV6Data = formatVxlanBackendData({ vni: this.options.vni, vtepMAC: await renewVxlanMac(kernel, this.specV6, context.stateDir, context.logger) });
      return attrs;
    });
  }

  protected needsRoutes(): boolean {
    return this.options.directRouting;
  }

  protected override async prepareOwnLease(own: Lease): Promise<void> {
    const v4 = this.ownV4(own);
    if (v4) await ensureVxlanAddress(this.kernel, v4.spec.name, v4.subnet, v4.network);
    const v6 = this.ownV6(own);
    if (v6) await ensureVxlanAddress(this.kernel, v6.spec.name, v6.subnet, v6.network);
    this.context.logger.info(
      { device: this.spec?.name ?? this.specV6?.name, subnet: own.subnet?.toString(), ipv6Subnet: own.ipv6Subnet?.toString() },
      "vxlan device addressed",
    );
  }

  protected peerObjects(peer: Peer): KernelObject[] {
    const objects = peer.v4 && this.spec ? this.familyObjects(peer.v4, this.spec.name) : [];
    if (peer.v6 && this.specV6) objects.push(...this.familyObjects(peer.v6, this.specV6.name));
    return objects;
  }

  /** The neighbour, FDB entry and onlink route of one family's half (or its direct route). */
  private familyObjects(peer: PeerFamily, device: string): KernelObject[] {
    if (peer.direct) return [{ kind: "route", destination: peer.subnet, gateway: peer.publicIP, device: this.context.external.name, onlink: false }];
    const address = networkAddressText(peer.subnet);
    return [
      { kind: "neigh", address, mac: peer.data.vtepMAC, device },
      { kind: "fdb", mac: peer.data.vtepMAC, device, destination: peer.publicIP },
      { kind: "route", destination: peer.subnet, gateway: address, device, onlink: true },
    ];
  }

  /** Both devices as configured, then (unless missing in a dry run) the own subnet addresses on them. */
  protected override async checkDevice(own: Lease | undefined, dryRun: boolean): Promise<DeviceCheck> {
    const changes: DeviceCheck["changes"] = [];
    let absent = false;
    if (this.spec) {
      const device = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger, dryRun);
      changes.push(...device.changes);
      const v4 = own && this.ownV4(own);
      if (v4 && !device.absent) changes.push(...(await ensureVxlanAddress(this.kernel, v4.spec.name, v4.subnet, v4.network, dryRun)));
      absent = device.absent;
    }
    this.v6DeviceAbsent = false;
    if (this.specV6) {
      const deviceV6 = await ensureVxlanDevice(this.kernel, this.specV6, this.context.stateDir, this.context.logger, dryRun);
      changes.push(...deviceV6.changes);
      const v6 = own && this.ownV6(own);
      if (v6 && !deviceV6.absent) changes.push(...(await ensureVxlanAddress(this.kernel, v6.spec.name, v6.subnet, v6.network, dryRun)));
      this.v6DeviceAbsent = deviceV6.absent;
    }
    // IPv6-only: flannel-v6.N is the only device, so its absence is the backend's.
    return { changes, deviceAbsent: this.spec ? absent : this.v6DeviceAbsent };
  }

  protected async actualObjects(own: Lease, routes: RouteSnapshot): Promise<KernelObject[]> {
    const underlay = this.options.directRouting ? [this.context.external.name] : [];
    const v4 = this.ownV4(own);
    // A dry run with flannel-v6.N missing: nothing on it to read, so all its objects show as adds.
    const v6 = this.v6DeviceAbsent ? undefined : this.ownV6(own);
    const [neighbours, fdb, neighboursV6, fdbV6] = await Promise.all([
      v4 ? this.kernel.readPermanentNeighbours(v4.spec.name) : [],
      v4 ? this.kernel.readRemoteFdb(v4.spec.name) : [],
      v6 ? this.kernel.readPermanentNeighbours(v6.spec.name, 6) : [],
      v6 ? this.kernel.readRemoteFdb(v6.spec.name) : [],
    ]);
    const owned = v4 ? ownedRoutes(routes.v4, { network: v4.network, ownSubnet: v4.subnet, overlayDevices: [v4.spec.name], underlayDevices: underlay }) : [];
    const ownedV6 = v6 ? ownedRoutes(routes.v6, { network: v6.network, ownSubnet: v6.subnet, overlayDevices: [v6.spec.name], underlayDevices: underlay }) : [];
    return [...owned, ...neighbours, ...fdb, ...ownedV6, ...neighboursV6, ...fdbV6];
  }

  protected classify(lease: Lease, routes: RouteSnapshot): Peer | Refusal {
    const network = this.context.network;
    const direct = (address: string, snapshot: RouteSnapshot["v4"], exclude: IpSubnet) =>
      this.options.directRouting && onLinkDevice(address, snapshot, exclude) !== undefined;
    const peer: Peer = {};
    if (network.ipv4 && lease.subnet) {
      let data: VxlanBackendData;
      try {
        data = parseVxlanBackendData(lease.attrs.backendData, lease.key);
      } catch (error) {
        return { refused: `unusable vxlan BackendData: ${errorMessage(error)}`, level: "warn" };
      }
      const publicIP = lease.attrs.publicIP;
      peer.v4 = { subnet: lease.subnet, publicIP, data, direct: direct(publicIP, routes.v4, network.ipv4.network) };
    }
    if (!network.ipv6) return peer.v4 ? peer : noCommonFamily(lease, network);
    const v6 = peerIpv6(lease);
    // A single-stack IPv4 host: IPv4 only, as flanneld (in an IPv6-only network, nothing to serve).
    if (v6 === undefined) return peer.v4 ? peer : noCommonFamily(lease, network);
    if ("refused" in v6) return v6;
    let dataV6: VxlanBackendData;
    try {
      dataV6 = parseVxlanBackendData(lease.attrs.backendV6Data, lease.key, "BackendV6Data");
    } catch (error) {
      // flanneld skips the whole lease when its BackendV6Data does not decode.
      return { refused: `unusable vxlan BackendV6Data: ${errorMessage(error)}`, level: "warn" };
    }
    peer.v6 = { subnet: v6.subnet, publicIP: v6.publicIPv6, data: dataV6, direct: direct(v6.publicIPv6, routes.v6, network.ipv6.network) };
    return peer;
  }

  /** flannel-v6.N's local address: the external interface's IPv6 address, which a dual-stack host must have. */
  private localV6(): string {
    const { addressV6, name } = this.context.external;
    if (addressV6 === undefined) {
      throw new Error(
        `vxlan: the network is dual-stack (EnableIPv6) but the external interface ${name} has no IPv6 address for flannel-v6.${this.options.vni}; ` +
          "add a global IPv6 address to it or pick another interface with --iface",
      );
    }
    return canonicalIp(addressV6, `external interface ${name} IPv6 address`, 6);
  }

  /** The own lease's IPv4 half with the device it goes on; undefined on an IPv6-only network. */
  private ownV4(own: Lease): { spec: VxlanDeviceSpec; subnet: Ipv4Subnet; network: Ipv4Subnet } | undefined {
    const network = this.context.network.ipv4;
    if (!network || !this.spec) return undefined;
    return { spec: this.spec, subnet: ownIpv4Subnet(own), network: network.network };
  }

  /** The own lease's IPv6 half with the device it goes on; undefined on an IPv4-only network. */
  private ownV6(own: Lease): { spec: VxlanDeviceSpec; subnet: Ipv6Subnet; network: Ipv6Subnet } | undefined {
    const network = this.context.network.ipv6;
    if (!network || !this.specV6) return undefined;
    return { spec: this.specV6, subnet: ownIpv6Subnet(own), network: network.network };
  }
}

export const vxlanBackend: BackendFactory = {
  type: "vxlan",
  validateOptions(options) {
    if (parseVxlanOptions(options).userspace) validateUserspaceVxlanOptions(options);
  },
  validateNetwork(network) {
    if (parseVxlanOptions(network.backend.options).userspace) refuseIpv6OnlyNetwork(network, "userspace vxlan");
  },
  create(context) {
    // "Userspace": true keeps the lease and wire format but swaps the kernel device for weft's engine.
    if (parseVxlanOptions(context.options).userspace) return createUserspaceVxlanBackend(context);
    return new VxlanBackend(context);
  },
};
