import type { Backend, BackendContext, BackendFactory, BackendRegistration, ReconcileReport } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { Kernel } from "../../kernel/kernel.js";
import { describeObject, type KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { describeChange, planChanges, type KernelChange } from "../../kernel/plan.js";
import { programmingMetrics, type ProgrammingMetrics } from "../../kernel/programming-metrics.js";
import { SerialQueue } from "../../kernel/serial-queue.js";
import { formatIpv4 } from "../../net/ipv4.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { formatVxlanBackendData, parseVxlanBackendData, type VxlanBackendData } from "./backend-data.js";
import { ensureVxlanAddress, ensureVxlanDevice, type VxlanDeviceSpec } from "./device.js";
import { VXLAN_OVERHEAD, parseVxlanOptions, vxlanDeviceName, type VxlanOptions } from "./options.js";
import { createUserspaceVxlanBackend, validateUserspaceVxlanOptions } from "../vxlan-userspace/vxlan-userspace-backend.js";

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
  private readonly peers = new Map<string, Peer>();
  private readonly ignored = new Set<string>();
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private ownLease: Lease | undefined;
  /** The first peer batch is the full snapshot: after it, reconcile removes what no lease backs. */
  private snapshotApplied = false;

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
    };
    this.metrics = programmingMetrics(context.metrics);
  }

  get deviceName(): string {
    return this.spec.name;
  }

  async register(): Promise<BackendRegistration> {
    return this.queue.run(async () => {
      const { mac } = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger);
      return {
        attrs: { backendType: "vxlan", backendData: formatVxlanBackendData({ vni: this.options.vni, vtepMAC: mac }) },
        mtu: this.spec.mtu,
      };
    });
  }

  async activate(ownLease: Lease): Promise<void> {
    await this.queue.run(async () => {
      const previous = this.ownLease;
      this.ownLease = ownLease;
      await ensureVxlanAddress(this.kernel, this.spec.name, ownLease.subnet, this.context.network.network);
      if (previous && !previous.subnet.equals(ownLease.subnet)) {
        // A new own subnet may collide with a peer entry we programmed: recompute everything.
        this.peers.delete(ownLease.subnet.toString());
      }
      this.context.logger.info({ device: this.spec.name, subnet: ownLease.subnet.toString() }, "vxlan device addressed");
    });
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      const before = this.desiredObjects();
      const needsRoutes = this.options.directRouting && events.some((event) => event.kind !== "removed");
      const routes = needsRoutes ? await this.kernel.readRoutes() : [];
      for (const event of events) {
        const key = event.lease.subnet.toString();
        if (event.kind === "removed") {
          this.peers.delete(key);
          this.ignored.delete(key);
          continue;
        }
        const peer = this.peerFromLease(event.lease);
        if (!peer) {
          this.peers.delete(key);
          continue;
        }
        if (this.options.directRouting) {
          peer.direct = onLinkDevice(peer.lease.attrs.publicIP, routes, this.context.network.network) !== undefined;
        }
        this.peers.set(key, peer);
      }
      this.metrics.peers.set({ backend: this.type }, this.peers.size);
      this.metrics.refusedPeers.set({ backend: this.type }, this.ignored.size);
      await this.program(planChanges(this.desiredObjects(), before), "peer update");
      if (!this.snapshotApplied && this.ownLease) {
        this.snapshotApplied = true;
        await this.reconcileNow(false); // state left from before a restart that no lease backs any more
      }
    });
  }

  async loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    this.ownLease = ownLease;
    this.snapshotApplied = true;
    const routes = this.options.directRouting ? await this.kernel.readRoutes() : [];
    for (const lease of peers) {
      const peer = this.peerFromLease(lease);
      if (!peer) continue;
      if (this.options.directRouting) peer.direct = onLinkDevice(lease.attrs.publicIP, routes, this.context.network.network) !== undefined;
      this.peers.set(lease.subnet.toString(), peer);
    }
  }

  refusedPeers(): string[] {
    return [...this.ignored].map((subnet) => `${subnet}: lease of another backend type or with unusable BackendData (see the log)`);
  }

  async reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(() => this.reconcileNow(options.dryRun));
  }

  private async reconcileNow(dryRun: boolean): Promise<ReconcileReport> {
    const changes: string[] = [];
    await this.kernel.resetBatches(); // a device re-created by someone else leaves stale indexes in them
    const device = await ensureVxlanDevice(this.kernel, this.spec, this.context.stateDir, this.context.logger, dryRun);
    changes.push(...device.changes);
    const desired = this.desiredObjects();
    const own = this.ownLease;
    if (!own) return { desired: desired.map(describeObject), actual: [], changes };
    const deviceMissing = device.changes.some((change) => /^(create|recreate) device/.test(change));
    if (deviceMissing && dryRun) {
      changes.push(...desired.map((object) => `add ${describeObject(object)}`));
      return { desired: desired.map(describeObject), actual: [], changes };
    }
    changes.push(...(await ensureVxlanAddress(this.kernel, this.spec.name, own.subnet, this.context.network.network, dryRun)));
    const actual = await this.actualObjects(own);
    const plan = planChanges(desired, actual);
    changes.push(...plan.map(describeChange));
    if (!dryRun && plan.length > 0) {
      this.metrics.repairs.inc({ backend: this.type }, plan.length);
      this.context.logger.warn({ changes: plan.map(describeChange) }, "reconcile: repairing kernel state that drifted from the lease set");
      await this.program(plan, "reconcile");
    }
    return { desired: desired.map(describeObject), actual: actual.map(describeObject), changes };
  }

  async stop(): Promise<void> {
    await this.queue.run(() => this.kernel.close());
  }

  /** What the kernel must hold for the current peer set. */
  desiredObjects(): KernelObject[] {
    const objects: KernelObject[] = [];
    const device = this.spec.name;
    for (const peer of this.peers.values()) {
      const subnet = peer.lease.subnet;
      const publicIP = peer.lease.attrs.publicIP;
      if (peer.direct) {
        objects.push({ kind: "route", destination: subnet, gateway: publicIP, device: this.context.external.name, onlink: false });
        continue;
      }
      const address = formatIpv4(subnet.network);
      objects.push({ kind: "neigh", address, mac: peer.data.vtepMAC, device });
      objects.push({ kind: "fdb", mac: peer.data.vtepMAC, device, destination: publicIP });
      objects.push({ kind: "route", destination: subnet, gateway: address, device, onlink: true });
    }
    return objects;
  }

  private async actualObjects(own: Lease): Promise<KernelObject[]> {
    const device = this.spec.name;
    const [routes, neighbours, fdb] = await Promise.all([
      this.kernel.readRoutes(),
      this.kernel.readPermanentNeighbours(device),
      this.kernel.readRemoteFdb(device),
    ]);
    const routeDevices = this.options.directRouting ? [device, this.context.external.name] : [device];
    return [...ownedRoutes(routes, this.context.network.network, own.subnet, routeDevices), ...neighbours, ...fdb];
  }

  private peerFromLease(lease: Lease): Peer | undefined {
    const key = lease.subnet.toString();
    if (this.ownLease && lease.subnet.equals(this.ownLease.subnet)) return undefined;
    if (lease.attrs.backendType !== "vxlan") {
      if (!this.ignored.has(key)) {
        this.context.logger.warn(
          { lease: lease.key, backendType: lease.attrs.backendType ?? "udp" },
          "ignoring a peer lease of another backend type: every host of a network must use the same backend",
        );
      }
      this.ignored.add(key);
      return undefined;
    }
    try {
      const data = parseVxlanBackendData(lease.attrs.backendData, lease.key);
      this.ignored.delete(key);
      return { lease, data, direct: false };
    } catch (error) {
      if (!this.ignored.has(key)) this.context.logger.warn({ lease: lease.key, error: (error as Error).message }, "ignoring a vxlan lease with unusable BackendData");
      this.ignored.add(key);
      return undefined;
    }
  }

  private async program(changes: readonly KernelChange[], why: string): Promise<void> {
    if (changes.length === 0) return;
    const started = performance.now();
    const failures = await this.kernel.apply(changes);
    const ms = Math.round(performance.now() - started);
    if (failures.length > 0) {
      this.metrics.failures.inc({ backend: this.type }, failures.length);
      // Reconcile retries them; each failure names the object and the kernel's answer.
      this.context.logger.error({ failures: failures.slice(0, 20), count: failures.length }, `${why}: some kernel changes failed; reconcile will retry`);
    }
    this.context.logger.debug({ changes: changes.length, ms, why }, "programmed kernel");
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
