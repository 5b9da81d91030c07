import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Lease, PeerEvent } from "../lease/types.js";
import type { Kernel, RouteState } from "../kernel/kernel.js";
import { describeObject, type KernelObject } from "../kernel/objects.js";
import { PeerSet, type Refusal } from "./peer-set.js";
import { describeChange, planChanges, type KernelChange } from "../kernel/plan.js";
import { programmingMetrics, type ProgrammingMetrics } from "./programming-metrics.js";
import { SerialQueue } from "../async/serial-queue.js";

/**
 * What the kernel backends (vxlan, host-gw) share: peer leases in, kernel objects out.
 *   1. a peer batch or a new own lease: desired objects before → after, the difference programmed;
 *   2. after the first batch (the snapshot): a reconcile, removing state left from before a restart;
 *   3. reconcile: the backend's device checks, then desired objects vs what the kernel holds.
 * Everything runs through one queue: an event and a reconcile interleaved could undo each other.
 * A backend supplies the hooks below; it owns no peer bookkeeping of its own.
 */

/** A ReconcileReport (src/backend/backend.ts), structurally: the kernel layer does not import backends. */
export interface PeerReconcileReport {
  desired: string[];
  actual: string[];
  changes: string[];
}

export interface DeviceCheck {
  /** Changes made (or, in a dry run, needed) to the backend's device, one line each. */
  changes: string[];
  /** Dry run only: the device does not exist, so every desired object would be added. */
  deviceAbsent: boolean;
}

export interface PeerProgrammerHooks<P> {
  /** Backend.Type: peers must advertise it; also the metrics label. */
  type: string;
  kernel: Kernel;
  logger: Logger;
  metrics: Registry;
  /** This host's PublicIP: a peer lease advertising it is never programmed. */
  ownPublicIP: string;
  /** Whether classify() looks at routes (host-gw, DirectRouting); they are read once per batch. */
  needsRoutes: boolean;
  /** The backend's decision for one peer lease of its type. */
  classify(lease: Lease, routes: readonly RouteState[]): P | Refusal;
  /** The kernel objects one accepted peer needs. */
  objects(peer: P): KernelObject[];
  /** The objects the kernel holds that the backend owns; `routes` is a fresh snapshot. */
  actual(own: Lease, routes: readonly RouteState[]): Promise<KernelObject[]>;
  /** Device-level checks before the peer objects (vxlan: flannel.N and its address). */
  checkDevice?(own: Lease | undefined, dryRun: boolean): Promise<DeviceCheck>;
}

export class PeerProgrammer<P> {
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private readonly peers: PeerSet<P>;
  private ownLease: Lease | undefined;
  /** The first peer batch is the full snapshot: after it, reconcile removes what no lease backs. */
  private snapshotApplied = false;

  constructor(private readonly hooks: PeerProgrammerHooks<P>) {
    this.metrics = programmingMetrics(hooks.metrics);
    this.peers = new PeerSet<P>({
      backendType: hooks.type,
      ownPublicIP: hooks.ownPublicIP,
      logger: hooks.logger,
      classify: (lease, routes) => hooks.classify(lease, routes),
    });
  }

  /** Runs `task` in the queue (device set-up must not interleave with programming either). */
  run<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.run(task);
  }

  /** What the kernel must hold for the current peer set. */
  desiredObjects(): KernelObject[] {
    return [...this.peers.peers()].flatMap((peer) => this.hooks.objects(peer));
  }

  refusedPeers(): string[] {
    return this.peers.refusedReasons();
  }

  /**
   * Takes the own lease; `setUp` runs first, in the queue (vxlan: the device address). A peer
   * programmed for what is now our own subnet is removed from the kernel, and a peer refused
   * for holding our former subnet is programmed.
   *
   * A new own lease after the peer snapshot (the daemon re-acquired another subnet) is followed
   * by a reconcile, so state left for the old or new own subnet goes at once. The first
   * activate() does not reconcile: the peer set is still empty then, and a reconcile would
   * remove every peer's state kept from before a restart (the restart must be hitless).
   */
  async activate(own: Lease, setUp?: () => Promise<void>): Promise<void> {
    await this.queue.run(async () => {
      await setUp?.();
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

  reconcile(dryRun: boolean): Promise<PeerReconcileReport> {
    return this.queue.run(() => this.reconcileNow(dryRun));
  }

  async stop(): Promise<void> {
    await this.queue.run(() => this.hooks.kernel.close());
  }

  private async reconcileNow(dryRun: boolean): Promise<PeerReconcileReport> {
    const { kernel, logger } = this.hooks;
    await kernel.resetBatches(); // a device re-created by someone else leaves stale indexes in them
    const own = this.ownLease;
    const device = (await this.hooks.checkDevice?.(own, dryRun)) ?? { changes: [], deviceAbsent: false };
    const changes = [...device.changes];
    if (!own) return { desired: this.desiredObjects().map(describeObject), actual: [], changes };
    const routes = await kernel.readRoutes();
    this.peers.reclassify(routes); // links come and go: a refused peer may be on-link now, or no longer
    this.updateMetrics();
    const desired = this.desiredObjects();
    if (device.deviceAbsent && dryRun) {
      changes.push(...desired.map((object) => `add ${describeObject(object)}`));
      return { desired: desired.map(describeObject), actual: [], changes };
    }
    const actual = await this.hooks.actual(own, routes);
    const plan = planChanges(desired, actual);
    changes.push(...plan.map(describeChange));
    if (!dryRun && plan.length > 0) {
      this.metrics.repairs.inc({ backend: this.hooks.type }, plan.length);
      logger.warn({ changes: plan.map(describeChange) }, "reconcile: repairing kernel state that drifted from the lease set");
      await this.program(plan, "reconcile");
    }
    return { desired: desired.map(describeObject), actual: actual.map(describeObject), changes };
  }

  private async routesIf(needed: boolean): Promise<RouteState[]> {
    return needed && this.hooks.needsRoutes ? this.hooks.kernel.readRoutes() : [];
  }

  private updateMetrics(): void {
    this.metrics.peers.set({ backend: this.hooks.type }, this.peers.acceptedCount);
    this.metrics.refusedPeers.set({ backend: this.hooks.type }, this.peers.refusedCount);
  }

  private async program(changes: readonly KernelChange[], why: string): Promise<void> {
    if (changes.length === 0) return;
    const started = performance.now();
    const failures = await this.hooks.kernel.apply(changes);
    const ms = Math.round(performance.now() - started);
    if (failures.length > 0) {
      this.metrics.failures.inc({ backend: this.hooks.type }, failures.length);
      // Reconcile retries them; each failure names the object and the kernel's answer.
      this.hooks.logger.error({ failures: failures.slice(0, 20), count: failures.length }, `${why}: some kernel changes failed; reconcile will retry`);
    }
    this.hooks.logger.debug({ changes: changes.length, ms, why }, "programmed kernel");
  }
}
