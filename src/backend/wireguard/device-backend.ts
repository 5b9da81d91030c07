import type { Backend, BackendContext, BackendRegistration } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { PeerTable } from "../peer-table.js";
import { programmingMetrics, recordPeerCounts, type ProgrammingMetrics } from "../programming-metrics.js";
import { describeReconcileChange, type DeviceChange, type ReconcileChange, type ReconcileReport, type TunObject } from "../reconcile-report.js";
import { tunChanges } from "../userspace/engine-backend.js";
import { ipv4NetworkOf, ownIpv4Subnet } from "../ipv4-half.js";
import { SerialQueue } from "../../async/serial-queue.js";
import type { PeerRoute } from "../../engine/engine.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { Ipv4Subnet, formatIpv4 } from "../../net/ipv4.js";
import { addressTun, readTunRouting } from "../../kernel/tun-routing.js";
import { WireguardDevice, type WgDump, type WgPeerState } from "../../kernel/wireguard-device.js";
import { runningWireguardGo, startWireguardGo, stopWireguardGo } from "../../kernel/wireguard-go.js";
import { formatWireguardBackendData } from "./backend-data.js";
import { devicePeerConfig, planDevicePeers, type DevicePeerPlan } from "./device-plan.js";
import { loadOrCreateKey, type LoadedKey } from "./key-file.js";
import { wireguardPeerRoute } from "./peer-route.js";
import type { WireguardOptions } from "./options.js";
import type { WireguardDeviceStatus } from "./wireguard-metrics.js";

/**
 * flannel's wireguard backend on a WireGuard *device*, configured as flanneld configures
 * flannel-wg: the kernel module's `type wireguard` link ("kernel"), or a TUN served by Debian's
 * wireguard-go, which weft starts ("wireguard-go"). From then on both are one code path through
 * wg(8):
 *   1. register: the device exists and answers wg (created, or started; an existing one is kept
 *      with its peers), our private key (flannel's key file) and ListenPort set, MTU - 80, up;
 *   2. activate: the own subnet address as /32 and the whole Network routed into the device;
 *   3. peers: one per wireguard lease (PublicKey, endpoint PublicIP:Port, AllowedIPs its subnet,
 *      PersistentKeepaliveInterval, PSK), planned against `wg show dump` (device-plan.ts), so a
 *      key or endpoint change updates the peer and a deleted lease removes it;
 *   4. reconcile: the same plan against the device as it is now, a deleted device re-created
 *      (wireguard-go: started again), so drift by hand is repaired;
 *   5. stop: the device, its peers and (wireguard-go) the process stay, so a restart loses
 *      nothing; `weft cleanup` removes them.
 * Everything runs in one queue: a peer event and a reconcile interleaved could undo each other.
 */

export type DeviceImplementation = "kernel" | "wireguard-go";

export interface DeviceBackendSpec {
  implementation: DeviceImplementation;
  options: WireguardOptions;
  /** The device MTU (and FLANNEL_MTU): MTU - 80. */
  mtu: number;
  keyFile: string;
  /** Network namespace of the device (tests, the lab); undefined: the daemon's. */
  netns?: string;
}

export class WireguardDeviceBackend implements Backend, LeaseSetLoader {
  readonly type = "wireguard";
  private readonly device: WireguardDevice;
  private readonly peers: PeerTable<PeerRoute>;
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private key: LoadedKey | undefined;
  private ownLease: Lease | undefined;
  /** The first peer batch is the full snapshot: only after it are peers no lease backs removed. */
  private snapshotApplied = false;

  constructor(
    private readonly context: BackendContext,
    private readonly spec: DeviceBackendSpec,
  ) {
    this.device = new WireguardDevice(spec.options.tunName, spec.netns);
    this.metrics = programmingMetrics(context.metrics);
    this.peers = new PeerTable<PeerRoute>({
      backendType: "wireguard",
      ownPublicIP: context.external.publicIP,
      logger: context.logger,
      classify: wireguardPeerRoute(spec.options.listenPort),
    });
  }

  get deviceName(): string {
    return this.device.name;
  }

  async register(): Promise<BackendRegistration> {
    return this.queue.run(async () => {
      const key = await this.loadKey();
      const changes = await this.ensureDevice(false);
      if (changes.length > 0) this.context.logger.warn({ changes: changes.map(describeReconcileChange) }, "wireguard: repaired the device found at start");
      const publicKey = key.publicKey.toString("base64");
      return {
        attrs: { backendType: "wireguard", backendData: formatWireguardBackendData({ publicKey, port: this.spec.options.listenPort }) },
        mtu: this.spec.mtu,
      };
    });
  }

  async activate(own: Lease): Promise<void> {
    await this.queue.run(async () => {
      this.ownLease = own;
      this.peers.setOwnLease(own);
      this.updateMetrics();
      await addressTun(this.device.name, ownIpv4Subnet(own), ipv4NetworkOf(this.context.network, "wireguard"), this.spec.netns);
      await this.programPeers("own lease change");
      if (this.snapshotApplied) await this.reconcileNow(false);
    });
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await this.queue.run(async () => {
      this.peers.apply(events);
      this.updateMetrics();
      await this.programPeers("peer update");
      if (!this.snapshotApplied && this.ownLease) {
        this.snapshotApplied = true; // from now on, peers no lease backs go (left from before a restart)
        await this.reconcileNow(false);
      }
    });
  }

  async loadLeaseSet(own: Lease, peers: readonly Lease[]): Promise<void> {
    await this.queue.run(async () => {
      // No key load here: doctor's dry run must not create a missing key file (a repair loads it when it configures the device).
      this.ownLease = own;
      this.snapshotApplied = true;
      this.peers.setOwnLease(own);
      this.peers.apply(peers.map((lease) => ({ kind: "added", lease })));
      this.updateMetrics();
    });
  }

  refusedPeers(): string[] {
    return this.peers.refusedReasons();
  }

  reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return this.queue.run(() => this.reconcileNow(options.dryRun));
  }

  /** Graceful: the device, its peers and a wireguard-go process stay, so a restart is hitless. */
  async stop(): Promise<void> {
    await this.queue.run(async () => {
      this.context.logger.info({ device: this.device.name, implementation: this.spec.implementation }, "wireguard: the device and its peers stay for the next start (`weft cleanup` removes them)");
    });
  }

  /** What the device says now, for /metrics (peers and their handshakes); undefined when it cannot be read. */
  async status(): Promise<WireguardDeviceStatus | undefined> {
    const dump = await this.device.readDump().catch(() => undefined);
    if (!dump) return undefined;
    const now = Date.now();
    return {
      peers: dump.peers.map((peer) => ({ lastHandshakeAgeMs: peer.latestHandshakeSeconds === 0 ? null : Math.max(0, now - peer.latestHandshakeSeconds * 1000) })),
    };
  }

  private async loadKey(): Promise<LoadedKey> {
    this.key ??= await loadOrCreateKey(this.spec.keyFile);
    return this.key;
  }

  /**
   * The device as configured: there and answering wg (created or started if not, a wrong one
   * replaced), our key and port, MTU, up. Returns what was (dry run: would be) changed; a dry
   * run with the device missing stops there.
   */
  private async ensureDevice(dryRun: boolean): Promise<DeviceChange[]> {
    const { name } = this.device;
    const changes: DeviceChange[] = [];
    let link = await this.device.readLink();
    let dump = link ? await this.device.readDump(this.spec.options.presharedKey) : undefined;
    const unusable = link && this.unusableReason(link.kind, dump);
    if (link && unusable) {
      changes.push({ action: "recreate-device", device: name, reason: unusable });
      if (dryRun) return changes;
      this.context.logger.warn({ device: name, reason: unusable }, "wireguard: the device cannot be used as it is; re-creating it");
      await stopWireguardGo(this.context.stateDir, name); // one weft started (another implementation before): its device goes with it
      await this.device.delete();
      link = undefined;
      dump = undefined;
    }
    const created = !link;
    if (!link) {
      if (this.ownLease) changes.push({ action: "recreate-device", device: name, reason: "it does not exist" });
      if (dryRun) return changes;
      dump = await this.createDevice();
      link = await this.device.readLink();
    } else {
      await this.noteAdopted();
    }
    if (!dump || !link) throw new Error(`wireguard: ${this.device.where} does not answer wg after it was created`);
    if (!dryRun) await this.configureInterface(dump);
    const wrongMtu = link.mtu !== this.spec.mtu;
    // A device just born is set up as a matter of course; only an existing one's state is drift.
    if (!created && wrongMtu) changes.push({ action: "set-mtu", device: name, mtu: this.spec.mtu, was: link.mtu });
    else if (!created && !link.up) changes.push({ action: "set-up", device: name });
    if (!dryRun && (wrongMtu || !link.up)) await this.device.setMtuUp(this.spec.mtu);
    return changes;
  }

  /** Why an existing link cannot serve as the device, or undefined when it can. */
  private unusableReason(kind: string | undefined, dump: WgDump | undefined): string | undefined {
    if (this.spec.implementation === "kernel" && kind !== "wireguard") return `it is a ${kind ?? "plain"} device, not the kernel's wireguard`;
    if (this.spec.implementation === "wireguard-go" && kind !== "tun") return `it is a ${kind ?? "plain"} device, not wireguard-go's TUN`;
    if (!dump) return "no WireGuard implementation answers wg on it (its wireguard-go is gone)";
    return undefined;
  }

  private async createDevice(): Promise<WgDump | undefined> {
    const { name } = this.device;
    this.adoptionNoted = true;
    if (this.spec.implementation === "kernel") {
      await this.device.createKernelDevice();
      this.context.logger.info({ device: name }, "wireguard: created the kernel WireGuard device");
    } else {
      // One that lost its device (deleted by hand) exits by itself; if not, it must not hold the socket.
      await stopWireguardGo(this.context.stateDir, name);
      const pid = await startWireguardGo(this.device, this.context.stateDir);
      this.context.logger.info({ device: name, pid }, "wireguard: started wireguard-go for the device (detached: it outlives weft restarts)");
    }
    return this.device.readDump(this.spec.options.presharedKey);
  }

  /** A device found at start is kept, peers included; said once, with who serves it. */
  private adoptionNoted = false;
  private async noteAdopted(): Promise<void> {
    if (this.adoptionNoted) return;
    this.adoptionNoted = true;
    const pid = this.spec.implementation === "wireguard-go" ? await runningWireguardGo(this.context.stateDir, this.device.name) : undefined;
    this.context.logger.info(
      { device: this.device.name, implementation: this.spec.implementation, ...(pid === undefined ? {} : { pid }) },
      this.spec.implementation === "wireguard-go" && pid === undefined
        ? "wireguard: kept the existing device; its wireguard-go was not started by weft (no PID file), so weft will not stop it"
        : "wireguard: kept the existing device and its peers",
    );
  }

  /** Our key and port on the device; set only when different (setting them again would reset sessions or rebind). */
  private async configureInterface(dump: WgDump): Promise<void> {
    const key = await this.loadKey();
    const publicKey = key.publicKey.toString("base64");
    const listenPort = this.spec.options.listenPort;
    await this.device.setInterface({
      ...(dump.device.publicKey === publicKey ? {} : { privateKeyFile: key.path }),
      ...(dump.device.listenPort === listenPort ? {} : { listenPort }),
    });
  }

  private desiredPeers() {
    return [...this.peers.peers()].map((route) => devicePeerConfig(route, this.spec.options.persistentKeepaliveSeconds));
  }

  private plan(actual: readonly WgPeerState[]): DevicePeerPlan {
    return planDevicePeers(this.desiredPeers(), actual, { presharedKey: this.spec.options.presharedKey !== undefined, removeUnknown: this.snapshotApplied });
  }

  private async applyPlan(plan: DevicePeerPlan): Promise<void> {
    await this.device.removePeers(plan.remove);
    await this.device.setPeers(plan.set, this.spec.options.presharedKey);
  }

  /** The device's peers made equal to the table's; a device that cannot be read is left to reconcile. */
  private async programPeers(why: string): Promise<void> {
    const started = performance.now();
    let dump: WgDump | undefined;
    try {
      dump = await this.device.readDump(this.spec.options.presharedKey);
      if (!dump) throw new Error(`${this.device.where} does not answer wg`);
      const plan = this.plan(dump.peers);
      await this.applyPlan(plan);
      if (plan.set.length + plan.remove.length > 0) {
        this.context.logger.debug({ set: plan.set.length, removed: plan.remove.length, why }, "programmed wireguard peers");
      }
    } catch (error) {
      this.metrics.failures.inc({ backend: this.type });
      this.context.logger.error({ err: error, why }, "wireguard: programming peers failed; reconcile will retry");
    } finally {
      this.metrics.programmingSeconds.observe({ backend: this.type }, (performance.now() - started) / 1000);
    }
  }

  private async reconcileNow(dryRun: boolean): Promise<ReconcileReport> {
    const own = this.ownLease;
    const name = this.device.name;
    const deviceChanges = await this.ensureDevice(dryRun);
    if (!own) return { desired: [], actual: [], changes: deviceChanges };
    const network = ipv4NetworkOf(this.context.network, "wireguard");
    const desired: TunObject[] = [
      { kind: "tun-device", device: name },
      { kind: "tun-address", address: `${formatIpv4(ownIpv4Subnet(own).network)}/32`, device: name },
      { kind: "tun-route", destination: network.toString(), device: name },
      ...[...this.peers.peers()].map((peer): TunObject => ({ kind: "engine-peer", peer })),
    ];
    const absent = deviceChanges.some((change) => change.action === "recreate-device");
    if (dryRun && absent) {
      return { desired, actual: [], changes: [...deviceChanges, ...desired.map((object) => ({ action: "add", object }) as const)] };
    }
    const routing = await readTunRouting(name, this.spec.netns);
    const dump = await this.device.readDump(this.spec.options.presharedKey);
    if (!dump) throw new Error(`wireguard: ${this.device.where} does not answer wg`);
    const actual: TunObject[] = [
      { kind: "tun-device", device: name },
      ...routing.addresses.filter((address) => !address.includes(":")).map((address): TunObject => ({ kind: "tun-address", address, device: name })),
      ...routing.routes.filter((route) => !route.includes(":")).map((destination): TunObject => ({ kind: "tun-route", destination, device: name })),
    ];
    const plan = this.plan(dump.peers);
    const changing = new Set([...plan.set.map((peer) => peer.publicKey), ...plan.remove]);
    // Peers in sync show as themselves; changed ones as the device holds them (removed) and as wanted (added).
    const peerObjects = [...this.peers.peers()].filter((peer) => !changing.has(peer.publicKey ?? ""));
    actual.push(...peerObjects.map((peer): TunObject => ({ kind: "engine-peer", peer })));
    const heldChanging = dump.peers.filter((peer) => changing.has(peer.publicKey)).flatMap((peer) => heldRoute(peer));
    actual.push(...heldChanging.map((peer): TunObject => ({ kind: "engine-peer", peer })));
    const routingChanges = tunChanges(desired.filter((object) => object.kind !== "engine-peer"), actual.filter((object) => object.kind !== "engine-peer"));
    const peerChanges: ReconcileChange[] = [
      ...heldChanging.map((peer) => ({ action: "remove", object: { kind: "engine-peer", peer } }) as const),
      ...[...this.peers.peers()].filter((peer) => plan.set.some((set) => set.publicKey === peer.publicKey)).map((peer) => ({ action: "add", object: { kind: "engine-peer", peer } }) as const),
    ];
    const changes: ReconcileChange[] = [...deviceChanges, ...routingChanges, ...peerChanges];
    if (!dryRun && routingChanges.length + peerChanges.length > 0) {
      this.metrics.repairs.inc({ backend: this.type }, routingChanges.length + peerChanges.length);
      this.context.logger.warn({ changes: changes.map(describeReconcileChange) }, "reconcile: repairing the WireGuard device that drifted from the lease set");
      if (routingChanges.length > 0) await addressTun(name, ownIpv4Subnet(own), network, this.spec.netns);
      await this.applyPlan(plan);
    }
    return { desired, actual, changes };
  }

  private updateMetrics(): void {
    recordPeerCounts(this.metrics, this.type, this.peers);
  }
}

/**
 * Before weft's userspace engine takes the device name: the device path's device, left by an
 * earlier start on another implementation, goes (a wireguard-go weft started, by its PID file;
 * a kernel wireguard link). A TUN cannot be opened while wireguard-go holds it. Returns what was removed.
 */
export async function releaseDevicePath(device: WireguardDevice, stateDir: string): Promise<string[]> {
  const removed: string[] = [];
  const pid = await stopWireguardGo(stateDir, device.name);
  if (pid !== undefined) removed.push(`wireguard-go (pid ${pid})`);
  if ((await device.readLink())?.kind === "wireguard") {
    await device.delete();
    removed.push(`kernel WireGuard device ${device.name}`);
  }
  return removed;
}

/** A peer as the device holds it, in the report's terms (one per IPv4 allowed IP, endpoint split). */
function heldRoute(peer: WgPeerState): PeerRoute[] {
  const endpoint = peer.endpoint === undefined ? undefined : /^(.*):(\d+)$/.exec(peer.endpoint);
  const publicIP = endpoint?.[1] ?? "(no endpoint)";
  const port = endpoint ? Number(endpoint[2]) : 0;
  const subnets = peer.allowedIps.map((text) => Ipv4Subnet.tryParse(text)).filter((subnet): subnet is Ipv4Subnet => subnet !== undefined);
  return (subnets.length > 0 ? subnets : [new Ipv4Subnet(0, 0)]).map((subnet) => ({ subnet, publicIP, publicKey: peer.publicKey, port }));
}
