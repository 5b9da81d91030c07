import type { Backend, BackendContext, BackendRegistration } from "./backend.js";
import type { LeaseSetLoader } from "./lease-set-loader.js";
import type { Lease, PeerEvent } from "../lease/types.js";
import { NO_ROUTES, type Kernel, type RouteSnapshot } from "../kernel/kernel.js";
import type { KernelObject } from "../kernel/objects.js";
import { describeChange, planChanges, type KernelChange } from "../kernel/plan.js";
import { PeerTable, type Refusal } from "./peer-table.js";
import { programmingMetrics, recordPeerCounts, type ProgrammingMetrics } from "./programming-metrics.js";
import type { DeviceChange, ReconcileChange, ReconcileReport } from "./reconcile-report.js";
import { SerialQueue } from "../async/serial-queue.js";
import { ownHostAddress } from "../lease/host-address.js";

/**
 * What the kernel backends (vxlan, host-gw) share: peer leases in, kernel objects out.
 *   1. a peer batch or a new own lease: desired objects before → after, the difference programmed;
 *   2. after the first batch (the snapshot): a reconcile, removing state left from before a restart;
 *   3. reconcile: the backend's device checks, then desired objects vs what the kernel holds.
 * Everything runs through one queue: an event and a reconcile interleaved could undo each other.
 * A backend extends this class with register() and the hooks below; the peer bookkeeping is
 * the PeerTable's, the programming this class's.
 */

export interface DeviceCheck {
  /** Changes made (or, in a dry run, needed) to the backend's device. */
  changes: DeviceChange[];
  /** Dry run only: the device does not exist, so every desired object would be added. */
  deviceAbsent: boolean;
}

const NO_DEVICE_CHANGES: DeviceCheck = Object.freeze({ changes: [], deviceAbsent: false }) as DeviceCheck;

export abstract class KernelPeerBackend<P> implements Backend, LeaseSetLoader {
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private readonly peers: PeerTable<P, RouteSnapshot>;
  private ownLease: Lease | undefined;
  /** The first peer batch is the full snapshot: after it, reconcile removes what no lease backs. */
  private snapshotApplied = false;

  /** `type`: Backend.Type, which peers must advertise; also the metrics label. */
  protected constructor(
    readonly type: string,
    protected readonly context: BackendContext,
    protected readonly kernel: Kernel,
  ) {
    this.metrics = programmingMetrics(context.metrics);
    this.peers = new PeerTable<P, RouteSnapshot>({
      backendType: type,
      ownPublicIP: ownHostAddress(context.network.ipv4 !== undefined, context.external),
      logger: context.logger,
      classify: (lease, routes) => this.classify(lease, routes),
    });
  }

  abstract register(): Promise<BackendRegistration>;

  /** The backend's decision for one peer lease of its type, given a route snapshot (empty unless needsRoutes()). */
  protected abstract classify(lease: Lease, routes: RouteSnapshot): P | Refusal;
  /** The kernel objects one accepted peer needs. */
  protected abstract peerObjects(peer: P): KernelObject[];
  /** The objects the kernel holds that the backend owns; `routes` is a fresh snapshot (IPv6 too when dual-stack). */
  protected abstract actualObjects(own: Lease, routes: RouteSnapshot): Promise<KernelObject[]>;
  /** Whether classify() looks at routes (host-gw, DirectRouting); they are then read once per batch. */
  protected abstract needsRoutes(): boolean;

  /** The network has an IPv6 half (EnableIPv6): peers get IPv6 objects, snapshots hold IPv6 routes. */
  protected get dualStack(): boolean {
    return this.context.network.ipv6 !== undefined;
  }

  /** Device-level checks before the peer objects (vxlan: flannel.N and its address). */
  protected async checkDevice(_own: Lease | undefined, _dryRun: boolean): Promise<DeviceCheck> {
    return NO_DEVICE_CHANGES;
  }

  /** Runs in the queue before a new own lease is taken (vxlan: the device address). */
  protected async prepareOwnLease(_own: Lease): Promise<void> {}

  /** Runs `task` in the queue (device set-up must not interleave with programming either). */
  protected run<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.run(task);
  }

  /** What the kernel must hold for the current peer set. */
  desiredObjects(): KernelObject[] {
    return [...this.peers.peers()].flatMap((peer) => this.peerObjects(peer));
  }

  refusedPeers(): string[] {
    return this.peers.refusedReasons();
  }

  /**
   * Takes the own lease, after prepareOwnLease(). A peer programmed for what is now our own
   * subnet is removed from the kernel, and a peer refused for holding our former subnet is
   * programmed.
   *
   * A new own lease after the peer snapshot (the daemon re-acquired another subnet) is followed
   * by a reconcile, so state left for the old or new own subnet goes at once. The first
   * activate() does not reconcile: the peer set is still empty then, and a reconcile would
   * remove every peer's state kept from before a restart (the restart must be hitless).
   */
  async activate(own: Lease): Promise<void> {
    await this.queue.run(async () => {
      await this.prepareOwnLease(own);
      const before = this.desiredObjects();
      this.ownLease = own;
      this.peers.setOwnLease(own, await this.routesIf(this.peers.leaseCount > 0));
      this.updateMetrics();
      await this.program(planChanges(this.desiredObjects(), before), "own lease change");
      if (this.snapshotApplied) await this.reconcileNow(false);
    });
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      const before = this.desiredObjects();
      this.peers.apply(events, await this.routesIf(events.some((event) => event.kind !== "removed")));
      this.updateMetrics();
      await this.program(planChanges(this.desiredObjects(), before), "peer update");
      if (!this.snapshotApplied && this.ownLease) {
        this.snapshotApplied = true;
        await this.reconcileNow(false); // state left from before a restart that no lease backs any more
      }
    });
  }

  /** The desired state for a lease set, programming nothing (weft doctor). */
  async loadLeaseSet(own: Lease, peers: readonly Lease[]): Promise<void> {
    await this.queue.run(async () => {
      this.ownLease = own;
      this.snapshotApplied = true;
      const routes = await this.routesIf(peers.length > 0);
      this.peers.setOwnLease(own, routes);
      this.peers.apply(
        peers.map((lease) => ({ kind: "added", lease })),
        routes,
      );
      this.updateMetrics();
    });
  }

  reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(() => this.reconcileNow(options.dryRun));
  }

  /** Graceful: the kernel state stays, so a restart is hitless. */
  async stop(): Promise<void> {
    await this.queue.run(() => this.kernel.close());
  }

  private async reconcileNow(dryRun: boolean): Promise<ReconcileReport> {
    await this.kernel.resetBatches(); // a device re-created by someone else leaves stale indexes in them
    const own = this.ownLease;
    const device = await this.checkDevice(own, dryRun);
    const changes: ReconcileChange[] = [...device.changes];
    if (!own) return { desired: this.desiredObjects(), actual: [], changes };
    const routes = await this.kernel.readRouteSnapshot(this.dualStack);
    this.peers.reclassify(routes); // links come and go: a refused peer may be on-link now, or no longer
    this.updateMetrics();
    const desired = this.desiredObjects();
    if (device.deviceAbsent && dryRun) {
      changes.push(...desired.map((object): KernelChange => ({ action: "add", object })));
      return { desired, actual: [], changes };
    }
    const actual = await this.actualObjects(own, routes);
    const plan = planChanges(desired, actual);
    changes.push(...plan);
    if (!dryRun && plan.length > 0) {
      this.metrics.repairs.inc({ backend: this.type }, plan.length);
      this.context.logger.warn({ changes: plan.map(describeChange) }, "reconcile: repairing kernel state that drifted from the lease set");
      await this.program(plan, "reconcile");
    }
    return { desired, actual, changes };
  }

  private async routesIf(needed: boolean): Promise<RouteSnapshot> {
    return needed && this.needsRoutes() ? this.kernel.readRouteSnapshot(this.dualStack) : NO_ROUTES;
  }

  private updateMetrics(): void {
    recordPeerCounts(this.metrics, this.type, this.peers);
  }

  private async program(changes: readonly KernelChange[], why: string): Promise<void> {
    if (changes.length === 0) return;
    const started = performance.now();
    const failures = await this.kernel.apply(changes);
    const ms = Math.round(performance.now() - started);
    this.metrics.programmingSeconds.observe({ backend: this.type }, (performance.now() - started) / 1000);
    if (failures.length > 0) {
      this.metrics.failures.inc({ backend: this.type }, failures.length);
      // Reconcile retries them; each failure names the object and the kernel's answer.
      this.context.logger.error({ failures: failures.slice(0, 20), count: failures.length }, `${why}: some kernel changes failed; reconcile will retry`);
    }
    this.context.logger.debug({ changes: changes.length, ms, why }, "programmed kernel");
  }
}
