import type { Backend, BackendContext, BackendRegistration, ReconcileReport } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { programmingMetrics, type ProgrammingMetrics } from "../programming-metrics.js";
import { SerialQueue } from "../../async/serial-queue.js";
import { formatIpv4 } from "../../net/ipv4.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { exportEngineCounters } from "../../engine/engine-metrics.js";
import { openEngine, type Engine, type EngineOptions, type PeerRoute } from "../../engine/engine.js";
import { addressTun, readTunRouting } from "../../kernel/tun-routing.js";

/**
 * A backend whose data path is the userspace engine (udp, userspace vxlan). The TUN device
 * is addressed like flannel0 (own subnet address /32, the whole Network routed into it) and
 * every usable peer lease becomes an engine route. Unlike the kernel backends, stop() takes
 * the data path down: the TUN exists only while the daemon runs (as flanneld's udp backend).
 */
export interface EngineBackendSpec {
  /** What register() reports. */
  registration: BackendRegistration;
  /** Everything the engine needs except what comes from the lease, the external interface and the namespace. */
  engine: Omit<EngineOptions, "bindAddress" | "icmpSource" | "netns">;
  /** The engine route for a peer lease, or why the lease cannot be served. */
  peerRoute(lease: Lease): PeerRoute | { refused: string };
}

/** Where the data path lives: the daemon's own namespace unless a test or the lab says otherwise. */
export interface EnginePlacement {
  /** Network namespace (name under /run/netns) for the TUN, the socket and the `ip` commands. */
  netns?: string;
}

export class EngineBackend implements Backend, LeaseSetLoader {
  private spec: EngineBackendSpec | undefined;
  private engine: Engine | undefined;
  private ownLease: Lease | undefined;
  private readonly routes = new Map<string, PeerRoute>();
  private readonly refused = new Map<string, string>();
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private unexport: (() => void) | undefined;

  constructor(
    readonly type: string,
    private readonly context: BackendContext,
    private readonly prepare: () => Promise<EngineBackendSpec>,
    private readonly placement: EnginePlacement = {},
  ) {
    this.metrics = programmingMetrics(context.metrics);
  }

  /** The device name once the engine is open (the kernel may have filled in a template). */
  get tunName(): string | undefined {
    return this.engine?.tunName;
  }

  /** The running engine, for tests and diagnostics. */
  get runningEngine(): Engine | undefined {
    return this.engine;
  }

  async register(): Promise<BackendRegistration> {
    return this.queue.run(async () => {
      this.spec = await this.prepare();
      return this.spec.registration;
    });
  }

  async activate(ownLease: Lease): Promise<void> {
    await this.queue.run(async () => {
      const spec = this.requireSpec();
      const previous = this.ownLease;
      this.ownLease = ownLease;
      // The ICMP source is the own subnet address, fixed when the engine opens.
      if (this.engine && previous && !previous.subnet.equals(ownLease.subnet)) this.closeEngine();
      if (!this.engine) this.openEngine(spec, ownLease);
      this.routes.delete(ownLease.subnet.toString());
      await this.addressDevice(ownLease);
      for (const route of this.routes.values()) this.engine?.setPeer(route);
      this.context.logger.info(
        { device: this.engine?.tunName, subnet: ownLease.subnet.toString(), features: this.engine?.features },
        "userspace data path up",
      );
    });
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      const spec = this.requireSpec();
      for (const event of events) this.applyEvent(spec, event);
      this.metrics.peers.set({ backend: this.type }, this.routes.size);
      this.metrics.refusedPeers.set({ backend: this.type }, this.refused.size);
    });
  }

  async loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    this.ownLease = ownLease;
    const spec = this.spec ?? (this.spec = await this.prepare());
    for (const lease of peers) this.applyEvent(spec, { kind: "added", lease });
  }

  refusedPeers(): string[] {
    return [...this.refused].map(([subnet, why]) => `${subnet}: ${why}`);
  }

  async reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(async () => {
      const own = this.ownLease;
      const spec = this.requireSpec();
      const device = this.engine?.tunName ?? spec.engine.tunName;
      const desired = own ? this.desiredLines(device, own) : [];
      if (!own) return { desired, actual: [], changes: [] };
      const state = await readTunRouting(device, this.placement.netns);
      const actual = state.exists
        ? [
            `device ${device}`,
            ...state.addresses.map((address) => `address ${address} dev ${device}`),
            ...state.routes.map((route) => `route ${route} dev ${device}`),
          ]
        : [];
      // Peers live in the engine, which this process owns: they cannot drift from the lease set.
      const peerLines = desired.filter((line) => line.startsWith("peer "));
      actual.push(...(this.engine ? peerLines : []));
      const changes = desired.filter((line) => !actual.includes(line)).map((line) => `add ${line}`);
      changes.push(
        ...actual
          .filter((line) => (line.startsWith("address ") || line.startsWith("route ")) && !desired.includes(line))
          .map((line) => `remove ${line}`),
      );
      if (!options.dryRun && changes.length > 0 && this.engine) {
        this.metrics.repairs.inc({ backend: this.type }, changes.length);
        this.context.logger.warn({ changes }, "reconcile: repairing the TUN device's address and route");
        if (!state.exists) {
          // Someone deleted the device under us: a TUN cannot come back on the same fd.
          this.closeEngine();
          this.openEngine(spec, own);
          for (const route of this.routes.values()) this.engine?.setPeer(route);
        }
        await this.addressDevice(own);
      }
      return { desired, actual, changes };
    });
  }

  async stop(): Promise<void> {
    await this.queue.run(async () => {
      this.closeEngine();
    });
  }

  private desiredLines(device: string, own: Lease): string[] {
    const lines = [
      `device ${device}`,
      `address ${formatIpv4(own.subnet.network)}/32 dev ${device}`,
      `route ${this.context.network.network} dev ${device}`,
    ];
    for (const route of this.routes.values()) {
      lines.push(`peer ${route.subnet} via ${route.publicIP}${route.vtepMac ? ` mac ${route.vtepMac}` : ""}`);
    }
    return lines;
  }

  private applyEvent(spec: EngineBackendSpec, event: PeerEvent): void {
    const subnet = event.lease.subnet;
    const key = subnet.toString();
    if (this.ownLease && subnet.equals(this.ownLease.subnet)) return;
    const previous = event.previous?.subnet;
    if (event.kind === "removed" || (previous && !previous.equals(subnet))) {
      const gone = event.kind === "removed" ? subnet : previous;
      if (gone && this.routes.delete(gone.toString())) this.engine?.removePeer(gone);
      this.refused.delete(gone?.toString() ?? key);
      if (event.kind === "removed") return;
    }
    const route = spec.peerRoute(event.lease);
    if ("refused" in route) {
      if (!this.refused.has(key)) {
        this.context.logger.warn({ lease: event.lease.key, reason: route.refused }, "ignoring a peer lease this backend cannot serve");
      }
      this.refused.set(key, route.refused);
      if (this.routes.delete(key)) this.engine?.removePeer(subnet);
      return;
    }
    this.refused.delete(key);
    this.routes.set(key, route);
    this.engine?.setPeer(route);
  }

  private openEngine(spec: EngineBackendSpec, own: Lease): void {
    this.engine = openEngine({
      ...spec.engine,
      netns: this.placement.netns,
      bindAddress: this.context.external.address,
      icmpSource: formatIpv4(own.subnet.network),
    });
    const engine = this.engine;
    this.unexport = exportEngineCounters(this.context.metrics, () => (engine.closed ? undefined : engine.counters()));
  }

  private closeEngine(): void {
    this.unexport?.();
    this.unexport = undefined;
    this.engine?.close();
    this.engine = undefined;
  }

  private async addressDevice(own: Lease): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    await addressTun(engine.tunName, own.subnet, this.context.network.network, this.placement.netns);
  }

  private requireSpec(): EngineBackendSpec {
    if (!this.spec) throw new Error(`${this.type} backend: register() must run before activate/applyPeers/reconcile`);
    return this.spec;
  }
}
