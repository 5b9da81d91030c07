import type { Backend, BackendContext, BackendFactory, BackendRegistration, ReconcileReport } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { Kernel, type RouteState } from "../../kernel/kernel.js";
import { describeObject, type KernelObject } from "../../kernel/objects.js";
import { onLinkDevice } from "../../kernel/on-link.js";
import { ownedRoutes } from "../../kernel/owned-routes.js";
import { describeChange, planChanges, type KernelChange } from "../../kernel/plan.js";
import { programmingMetrics, type ProgrammingMetrics } from "../../kernel/programming-metrics.js";
import { SerialQueue } from "../../kernel/serial-queue.js";
import type { Lease, PeerEvent } from "../../lease/types.js";

/**
 * host-gw (spec §7): no device, no encapsulation; each peer's subnet is routed via the peer's
 * PublicIP on the external interface. That only works when every host shares one L2 segment,
 * so a peer whose PublicIP is not on-link is refused (logged, counted, listed by doctor)
 * instead of leaving the kernel to reject the route with "Nexthop has invalid gateway".
 */
export class HostGwBackend implements Backend, LeaseSetLoader {
  readonly type = "host-gw";
  private readonly peers = new Map<string, Lease>();
  /** Subnet → the peer that cannot be routed and why. */
  private readonly refused = new Map<string, { lease: Lease; reason: string }>();
  private readonly ignoredTypes = new Set<string>();
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private ownLease: Lease | undefined;
  private snapshotApplied = false;

  constructor(
    private readonly context: BackendContext,
    private readonly kernel: Kernel = new Kernel(),
  ) {
    this.metrics = programmingMetrics(context.metrics);
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

  async activate(ownLease: Lease): Promise<void> {
    this.ownLease = ownLease;
    this.peers.delete(ownLease.subnet.toString());
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      const before = this.desiredObjects();
      const routes = events.some((event) => event.kind !== "removed") ? await this.kernel.readRoutes() : [];
      for (const event of events) this.applyEvent(event, routes);
      this.updateMetrics();
      await this.program(planChanges(this.desiredObjects(), before), "peer update");
      if (!this.snapshotApplied && this.ownLease) {
        this.snapshotApplied = true;
        await this.reconcileNow(false); // remove routes left from before a restart that no lease backs
      }
    });
  }

  async loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    this.ownLease = ownLease;
    this.snapshotApplied = true;
    const routes = await this.kernel.readRoutes();
    for (const lease of peers) this.applyEvent({ kind: "added", lease }, routes);
  }

  refusedPeers(): string[] {
    return [...this.refused.values()].map((entry) => entry.reason);
  }

  async reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(() => this.reconcileNow(options.dryRun));
  }

  async stop(): Promise<void> {
    await this.queue.run(() => this.kernel.close());
  }

  desiredObjects(): KernelObject[] {
    const device = this.context.external.name;
    return [...this.peers.values()].map((lease) => ({
      kind: "route",
      destination: lease.subnet,
      gateway: lease.attrs.publicIP,
      device,
      onlink: false,
    }));
  }

  private async reconcileNow(dryRun: boolean): Promise<ReconcileReport> {
    const own = this.ownLease;
    if (!own) return { desired: [], actual: [], changes: [] };
    await this.kernel.resetBatches();
    const routes = await this.kernel.readRoutes();
    // Links come and go: re-check every peer, including those refused before.
    for (const lease of [...this.peers.values(), ...[...this.refused.values()].map((entry) => entry.lease)]) {
      this.applyEvent({ kind: "changed", lease }, routes);
    }
    this.updateMetrics();
    const desired = this.desiredObjects();
    const actual = ownedRoutes(routes, this.context.network.network, own.subnet, [this.context.external.name]);
    const plan = planChanges(desired, actual);
    if (!dryRun && plan.length > 0) {
      this.metrics.repairs.inc({ backend: this.type }, plan.length);
      this.context.logger.warn({ changes: plan.map(describeChange) }, "reconcile: repairing routes that drifted from the lease set");
      await this.program(plan, "reconcile");
    }
    return { desired: desired.map(describeObject), actual: actual.map(describeObject), changes: plan.map(describeChange) };
  }

  private applyEvent(event: PeerEvent, routes: readonly RouteState[]): void {
    const lease = event.lease;
    const key = lease.subnet.toString();
    this.peers.delete(key);
    this.refused.delete(key);
    if (event.kind === "removed") {
      this.ignoredTypes.delete(key);
      return;
    }
    if (this.ownLease && lease.subnet.equals(this.ownLease.subnet)) return;
    if (lease.attrs.backendType !== "host-gw") {
      if (!this.ignoredTypes.has(key)) {
        this.context.logger.warn(
          { lease: lease.key, backendType: lease.attrs.backendType ?? "udp" },
          "ignoring a peer lease of another backend type: every host of a network must use the same backend",
        );
      }
      this.ignoredTypes.add(key);
      return;
    }
    this.ignoredTypes.delete(key);
    const device = this.context.external.name;
    const onLink = onLinkDevice(lease.attrs.publicIP, routes, this.context.network.network);
    if (onLink !== device) {
      const reason =
        `host-gw cannot route ${key}: its host ${lease.attrs.publicIP} is not on-link from ${device}` +
        (onLink ? ` (it is on ${onLink})` : " (reached through a gateway)") +
        "; host-gw needs every host on one L2 segment: use the vxlan backend (DirectRouting keeps direct routes where possible)";
      if (!this.refused.has(key)) this.context.logger.error({ lease: lease.key }, reason);
      this.refused.set(key, { lease, reason });
      return;
    }
    this.peers.set(key, lease);
  }

  private updateMetrics(): void {
    this.metrics.peers.set({ backend: this.type }, this.peers.size);
    this.metrics.refusedPeers.set({ backend: this.type }, this.refused.size + this.ignoredTypes.size);
  }

  private async program(changes: readonly KernelChange[], why: string): Promise<void> {
    if (changes.length === 0) return;
    const failures = await this.kernel.apply(changes);
    if (failures.length > 0) {
      this.metrics.failures.inc({ backend: this.type }, failures.length);
      this.context.logger.error({ failures: failures.slice(0, 20), count: failures.length }, `${why}: some routes could not be programmed; reconcile will retry`);
    }
  }
}

export const hostGwBackend: BackendFactory = {
  type: "host-gw",
  validateOptions() {},
  create: (context) => new HostGwBackend(context),
};
