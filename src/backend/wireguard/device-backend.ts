import type { Backend, BackendContext, BackendRegistration } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import { PeerTable } from "../peer-table.js";
import { programmingMetrics, recordPeerCounts, type ProgrammingMetrics } from "../programming-metrics.js";
import { describeReconcileChange, type DeviceChange, type ReconcileChange, type ReconcileReport, type TunObject } from "../reconcile-report.js";
import { tunChanges } from "../userspace/engine-backend.js";
import { ipv4NetworkOf, ownIpv4Subnet } from "../ipv4-half.js";
import { ownIpv6Subnet } from "../dual-stack.js";
import { SerialQueue } from "../../async/serial-queue.js";
import { sleep } from "../../async/sleep.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import { formatIpv4 } from "../../net/ipv4.js";
import { formatIpv6, type Ipv6Subnet } from "../../net/ipv6.js";
import { addressTun, readTunRouting } from "../../kernel/tun-routing.js";
import { WireguardDevice, type WgDump, type WgPeerConfig, type WgPeerState } from "../../kernel/wireguard-device.js";
import { runningWireguardGo, startWireguardGo, stopWireguardGo } from "../../kernel/wireguard-go.js";
import { formatWireguardBackendData } from "./backend-data.js";
import { devicePeerConfig, peersToReinitiate, planDevicePeers, type DeviceCarriage, type DevicePeerPlan } from "./device-plan.js";
import { loadOrCreateKey, type LoadedKey } from "./key-file.js";
import type { KeyHolder } from "./key-rotation.js";
import { wireguardDevicePeer, type WireguardDevicePeer } from "./peer-route.js";
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
 * A key rotation (key-rotation.ts, useKey) changes the key every device holds and the one steps
 * 1 and 4 hold them to, keeping peers and endpoints; the key given to wg is always the one weft
 * read and checked (wireguard-device.ts), never the key file by path.
 * A dual-stack network (EnableIPv6) adds IPv6 as flanneld does. Mode "separate" (the default):
 * a second device flannel-wg-v6 on ListenPortV6 with the same key and MTU, the own IPv6 subnet's
 * address as /128 and the IPv6Network routed into it, one peer per lease with an IPv6 subnet
 * (BackendV6Data's key, endpoint [PublicIPv6]:Port, AllowedIPs its IPv6 subnet); all five steps
 * above hold for it as for flannel-wg (wireguard-go: a second process). Modes "auto", "ipv4",
 * "ipv6": flannel-wg alone carries both families (AllowedIPs both subnets of a peer, both
 * addresses and routes on the device), the endpoint chosen by family (device-plan.ts).
 * Everything runs in one queue: a peer event and a reconcile interleaved could undo each other.
 */

export type DeviceImplementation = "kernel" | "wireguard-go";

export interface DeviceBackendSpec {
  implementation: DeviceImplementation;
  options: WireguardOptions;
  /** The device MTU (and FLANNEL_MTU): MTU - 80, the same on both devices. */
  mtu: number;
  keyFile: string;
  /** Network namespace of the device (tests, the lab); undefined: the daemon's. */
  netns?: string;
}

/** How long after a rotation was advertised the devices initiate to the peers that have not handshaken since (as the userspace engine). */
export const REINITIATE_AFTER_ROTATION_MS = 1000;

/** Each device's peers as they were when the key last changed. */
interface RotationBaseline {
  atSeconds: number;
  peers: Map<ManagedDevice, readonly WgPeerState[]>;
}

/** One WireGuard device of the backend and what it carries. */
interface ManagedDevice {
  device: WireguardDevice;
  listenPort: number;
  carriage: DeviceCarriage;
  /** Whether the own IPv4 / IPv6 subnet address and Network route go on it. */
  ipv4: boolean;
  ipv6: boolean;
  /** A device found at start is kept, peers included; said once per device. */
  adoptionNoted: boolean;
}

/** The device names of a spec's layout: flannel-wg, and in Mode "separate" on a dual-stack network flannel-wg-v6. */
function deviceLayout(context: BackendContext, spec: DeviceBackendSpec): ManagedDevice[] {
  const { options, netns } = spec;
  const managed = (name: string, listenPort: number, carriage: DeviceCarriage, ipv4: boolean, ipv6: boolean): ManagedDevice => ({
    device: new WireguardDevice(name, netns), listenPort, carriage, ipv4, ipv6, adoptionNoted: false,
  });
  if (!context.network.ipv6) return [managed(options.tunName, options.listenPort, { families: "ipv4", listenPort: options.listenPort }, true, false)];
  if (options.mode === "separate") {
    return [
      managed(options.tunName, options.listenPort, { families: "ipv4", listenPort: options.listenPort }, true, false),
      managed(options.tunNameV6, options.listenPortV6, { families: "ipv6", listenPort: options.listenPortV6 }, false, true),
    ];
  }
  const own = { ipv4: context.external.publicIP, ipv6: context.external.publicIPv6 };
  const endpoint = options.mode === "auto" ? "auto" : options.mode;
  return [managed(options.tunName, options.listenPort, { families: "both", listenPort: options.listenPort, endpoint, own }, true, true)];
}

export class WireguardDeviceBackend implements Backend, LeaseSetLoader, KeyHolder {
  readonly type = "wireguard";
  private readonly devices: ManagedDevice[];
  private readonly peers: PeerTable<WireguardDevicePeer>;
  private readonly queue = new SerialQueue();
  private readonly metrics: ProgrammingMetrics;
  private readonly stopping = new AbortController();
  /** The key every device must hold: loaded at register(), replaced by a rotation (useKey). */
  private key: LoadedKey | undefined;
  private rotationBaseline: RotationBaseline | undefined;
  private ownLease: Lease | undefined;
  /** The first peer batch is the full snapshot: only after it are peers no lease backs removed. */
  private snapshotApplied = false;

  constructor(
    private readonly context: BackendContext,
    private readonly spec: DeviceBackendSpec,
  ) {
    this.devices = deviceLayout(context, spec);
    this.metrics = programmingMetrics(context.metrics);
    this.peers = new PeerTable<WireguardDevicePeer>({
      backendType: "wireguard",
      ownPublicIP: context.external.publicIP,
      logger: context.logger,
      classify: wireguardDevicePeer(context.network.ipv6 !== undefined),
    });
  }

  /** flannel-wg (the device that carries IPv4). */
  get deviceName(): string {
    return (this.devices[0] as ManagedDevice).device.name;
  }

  /** Every device this backend keeps: flannel-wg, and flannel-wg-v6 in Mode "separate" with IPv6. */
  get deviceNames(): string[] {
    return this.devices.map((managed) => managed.device.name);
  }

  /** The key the devices hold (or are being given); undefined before register(). */
  get currentKey(): LoadedKey | undefined {
    return this.key;
  }

  async register(): Promise<BackendRegistration> {
    return this.queue.run(async () => {
      const key = await this.loadKey();
      for (const managed of this.devices) {
        const changes = await this.ensureDevice(managed, false);
        if (changes.length > 0) this.context.logger.warn({ device: managed.device.name, changes: changes.map(describeReconcileChange) }, "wireguard: repaired the device found at start");
      }
      await this.releaseUnusedIpv6Device();
      return { attrs: this.registrationAttrs(key.publicKey.toString("base64")), mtu: this.spec.mtu };
    });
  }

  /** The lease's BackendData (and BackendV6Data when a device carries IPv6) for `publicKey`. */
  registrationAttrs(publicKey: string): BackendRegistration["attrs"] {
    const { options } = this.spec;
    const ipv6Device = this.devices.find((managed) => managed.ipv6);
    return {
      backendType: "wireguard",
      backendData: formatWireguardBackendData({ publicKey, port: options.listenPort }),
      // The port the IPv6-carrying device really listens on (flanneld writes ListenPortV6 even when that is flannel-wg on ListenPort).
      ...(ipv6Device ? { backendV6Data: formatWireguardBackendData({ publicKey, port: ipv6Device.listenPort }) } : {}),
    };
  }

  /**
   * A rotated key (key-rotation.ts): from now on the key of every device, for reconcile and a
   * re-created device too, and set on each device at once (peers and endpoints stay). A device
   * that cannot take it now (gone, not answering) is left to reconcile, which gives it this key.
   */
  async useKey(next: LoadedKey): Promise<void> {
    await this.queue.run(async () => {
      this.key = next;
      const publicKey = next.publicKey.toString("base64");
      const baseline: RotationBaseline = { atSeconds: Date.now() / 1000, peers: new Map() };
      for (const managed of this.devices) {
        try {
          // The key first (a device given its own key again does nothing): the stall it starts lasts until the lease is written and read.
          await managed.device.setInterface({ privateKey: next.privateKey });
          const dump = await managed.device.readDump(this.spec.options.presharedKey);
          if (!dump) throw new Error(`${managed.device.where} does not answer wg`);
          if (dump.device.publicKey !== publicKey) throw new Error(`${managed.device.where} holds public key ${dump.device.publicKey} after it was given ${publicKey}`);
          // The handshakes before the rotation: a key change leaves them as they were.
          baseline.peers.set(managed, dump.peers);
        } catch (error) {
          this.metrics.failures.inc({ backend: this.type });
          this.context.logger.error({ err: error, device: managed.device.name }, "wireguard: giving the device the rotated key failed; reconcile retries");
        }
      }
      this.rotationBaseline = baseline;
    });
  }

  /** The lease carries the rotated key: a second later, the peers that have not handshaken with it are initiated to. */
  keyAdvertised(): void {
    const baseline = this.rotationBaseline;
    if (!baseline) return;
    const { signal } = this.stopping;
    void sleep(REINITIATE_AFTER_ROTATION_MS, signal, { unref: true })
      .then(() => (signal.aborted || this.rotationBaseline !== baseline ? undefined : this.queue.run(() => this.reinitiateAfterRotation(baseline))))
      .catch((error: unknown) => this.context.logger.warn({ err: error }, "wireguard: initiating to peers after the key rotation failed; they handshake on their next packet"));
  }

  async activate(own: Lease): Promise<void> {
    await this.queue.run(async () => {
      this.ownLease = own;
      this.peers.setOwnLease(own);
      this.updateMetrics();
      for (const managed of this.devices) await this.addressDevice(managed, own);
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

  /** Graceful: the devices, their peers and wireguard-go processes stay, so a restart is hitless. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.queue.run(async () => {
      this.context.logger.info(
        { devices: this.deviceNames, implementation: this.spec.implementation },
        "wireguard: the devices and their peers stay for the next start (`weft cleanup` removes them)",
      );
    });
  }

  /** What the devices say now, for /metrics (peers and their handshakes); undefined when none can be read. */
  async status(): Promise<WireguardDeviceStatus | undefined> {
    const dumps = await Promise.all(this.devices.map((managed) => managed.device.readDump().catch(() => undefined)));
    const read = dumps.filter((dump): dump is WgDump => dump !== undefined);
    if (read.length === 0) return undefined;
    const now = Date.now();
    return {
      peers: read.flatMap((dump) => dump.peers).map((peer) => ({ lastHandshakeAgeMs: peer.latestHandshakeSeconds === 0 ? null : Math.max(0, now - peer.latestHandshakeSeconds * 1000) })),
    };
  }

  private async loadKey(): Promise<LoadedKey> {
    this.key ??= await loadOrCreateKey(this.spec.keyFile);
    return this.key;
  }

  /**
   * flannel-wg-v6 left by a start in Mode "separate" when this one has none (another Mode, or
   * IPv6 off): it would route the IPv6Network past flannel-wg. Only one weft owns goes (its
   * wireguard-go by the PID file, or a kernel wireguard link by that name).
   */
  private async releaseUnusedIpv6Device(): Promise<void> {
    const name = this.spec.options.tunNameV6;
    if (this.devices.some((managed) => managed.device.name === name)) return;
    let device: WireguardDevice;
    try {
      device = new WireguardDevice(name, this.spec.netns);
    } catch {
      return; // TunName too long for a "-v6" sibling: there cannot be one
    }
    const removed = await releaseDevicePath(device, this.context.stateDir);
    if (removed.length > 0) this.context.logger.info({ removed }, `wireguard: removed ${name}, which this configuration does not use (Mode "${this.spec.options.mode}"${this.context.network.ipv6 ? "" : ", EnableIPv6 off"})`);
  }

  /** The own lease's addresses and the Network routes on a device, for the families it carries. */
  private async addressDevice(managed: ManagedDevice, own: Lease): Promise<void> {
    const { device } = managed;
    if (managed.ipv4) await addressTun(device.name, ownIpv4Subnet(own), ipv4NetworkOf(this.context.network, "wireguard"), this.spec.netns);
    if (managed.ipv6) await device.addressIpv6(ownIpv6Subnet(own), this.ipv6Network());
  }

  private ipv6Network(): Ipv6Subnet {
    const network = this.context.network.ipv6;
    if (!network) throw new Error("wireguard: a device carries IPv6 but the network has no IPv6Network (EnableIPv6 is off)");
    return network.network;
  }

  /**
   * The device as configured: there and answering wg (created or started if not, a wrong one
   * replaced), our key and port, MTU, up. Returns what was (dry run: would be) changed; a dry
   * run with the device missing stops there.
   */
  private async ensureDevice(managed: ManagedDevice, dryRun: boolean): Promise<DeviceChange[]> {
    const { device } = managed;
    const { name } = device;
    const changes: DeviceChange[] = [];
    let link = await device.readLink();
    let dump = link ? await device.readDump(this.spec.options.presharedKey) : undefined;
    const unusable = link && this.unusableReason(link.kind, dump);
    if (link && unusable) {
      changes.push({ action: "recreate-device", device: name, reason: unusable });
      if (dryRun) return changes;
      this.context.logger.warn({ device: name, reason: unusable }, "wireguard: the device cannot be used as it is; re-creating it");
      await stopWireguardGo(this.context.stateDir, name); // one weft started (another implementation before): its device goes with it
      await device.delete();
      link = undefined;
      dump = undefined;
    }
    const created = !link;
    if (!link) {
      if (this.ownLease) changes.push({ action: "recreate-device", device: name, reason: "it does not exist" });
      if (dryRun) return changes;
      dump = await this.createDevice(managed);
      link = await device.readLink();
    } else {
      await this.noteAdopted(managed);
    }
    if (!dump || !link) throw new Error(`wireguard: ${device.where} does not answer wg after it was created`);
    if (!dryRun) await this.configureInterface(managed, dump);
    const wrongMtu = link.mtu !== this.spec.mtu;
    // A device just born is set up as a matter of course; only an existing one's state is drift.
    if (!created && wrongMtu) changes.push({ action: "set-mtu", device: name, mtu: this.spec.mtu, was: link.mtu });
    else if (!created && !link.up) changes.push({ action: "set-up", device: name });
    if (!dryRun && (wrongMtu || !link.up)) await device.setMtuUp(this.spec.mtu);
    return changes;
  }

  /** Why an existing link cannot serve as the device, or undefined when it can. */
  private unusableReason(kind: string | undefined, dump: WgDump | undefined): string | undefined {
    if (this.spec.implementation === "kernel" && kind !== "wireguard") return `it is a ${kind ?? "plain"} device, not the kernel's wireguard`;
    if (this.spec.implementation === "wireguard-go" && kind !== "tun") return `it is a ${kind ?? "plain"} device, not wireguard-go's TUN`;
    if (!dump) return "no WireGuard implementation answers wg on it (its wireguard-go is gone)";
    return undefined;
  }

  private async createDevice(managed: ManagedDevice): Promise<WgDump | undefined> {
    const { device } = managed;
    managed.adoptionNoted = true;
    if (this.spec.implementation === "kernel") {
      await device.createKernelDevice();
      this.context.logger.info({ device: device.name }, "wireguard: created the kernel WireGuard device");
    } else {
      // One that lost its device (deleted by hand) exits by itself; if not, it must not hold the socket.
      await stopWireguardGo(this.context.stateDir, device.name);
      // Under systemd a unit of its own, so that restarting weft.service does not kill it (wireguard-go.ts).
      const pid = await startWireguardGo(device, this.context.stateDir, { service: this.context.restarts?.fdStore !== undefined });
      this.context.logger.info({ device: device.name, pid }, "wireguard: started wireguard-go for the device (detached: it outlives weft restarts)");
    }
    return device.readDump(this.spec.options.presharedKey);
  }

  private async noteAdopted(managed: ManagedDevice): Promise<void> {
    if (managed.adoptionNoted) return;
    managed.adoptionNoted = true;
    const { name } = managed.device;
    const pid = this.spec.implementation === "wireguard-go" ? await runningWireguardGo(this.context.stateDir, name) : undefined;
    this.context.logger.info(
      { device: name, implementation: this.spec.implementation, ...(pid === undefined ? {} : { pid }) },
      this.spec.implementation === "wireguard-go" && pid === undefined
        ? "wireguard: kept the existing device; its wireguard-go was not started by weft (no PID file), so weft will not stop it"
        : "wireguard: kept the existing device and its peers",
    );
  }

  /**
   * Our key (the rotated one after a rotation) and the device's port; set only when different
   * (setting them again would reset sessions or rebind).
   */
  private async configureInterface(managed: ManagedDevice, dump: WgDump): Promise<void> {
    const key = await this.loadKey();
    const publicKey = key.publicKey.toString("base64");
    const { listenPort } = managed;
    await managed.device.setInterface({
      ...(dump.device.publicKey === publicKey ? {} : { privateKey: key.privateKey }),
      ...(dump.device.listenPort === listenPort ? {} : { listenPort }),
    });
  }

  /** The follow-up of a rotation: peers that had a session then and no handshake since are configured again, initiating (device-plan.ts peersToReinitiate). */
  private async reinitiateAfterRotation(baseline: RotationBaseline): Promise<void> {
    for (const managed of this.devices) {
      const before = baseline.peers.get(managed);
      if (!before) continue;
      const dump = await managed.device.readDump(this.spec.options.presharedKey);
      if (!dump) continue; // gone: reconcile re-creates it, and its peers handshake on their first packet
      const stale = peersToReinitiate(before, dump.peers, this.desiredPeers(managed).map((each) => each.config), baseline.atSeconds);
      if (stale.length === 0) continue;
      await managed.device.reinitiatePeers(stale, this.spec.options.presharedKey);
      this.context.logger.info(
        { device: managed.device.name, peers: stale.length, afterMs: REINITIATE_AFTER_ROTATION_MS },
        "wireguard: initiated handshakes with the rotated key to the peers that had not made one since the rotation",
      );
    }
  }

  /** The served peers a device carries, each with its device configuration. */
  private desiredPeers(managed: ManagedDevice): { peer: WireguardDevicePeer; config: WgPeerConfig }[] {
    return [...this.peers.peers()].flatMap((peer) => {
      const config = devicePeerConfig(peer, managed.carriage, this.spec.options.persistentKeepaliveSeconds);
      return config ? [{ peer, config }] : [];
    });
  }

  private plan(managed: ManagedDevice, actual: readonly WgPeerState[]): DevicePeerPlan {
    const desired = this.desiredPeers(managed).map((each) => each.config);
    return planDevicePeers(desired, actual, { presharedKey: this.spec.options.presharedKey !== undefined, removeUnknown: this.snapshotApplied });
  }

  private async applyPlan(managed: ManagedDevice, plan: DevicePeerPlan): Promise<void> {
    await managed.device.updatePeers({ remove: plan.remove, set: plan.set, initiate: new Set(plan.initiate) }, this.spec.options.presharedKey);
  }

  /** Each device's peers made equal to the table's; a device that cannot be read is left to reconcile. */
  private async programPeers(why: string): Promise<void> {
    for (const managed of this.devices) {
      const started = performance.now();
      try {
        const dump = await managed.device.readDump(this.spec.options.presharedKey);
        if (!dump) throw new Error(`${managed.device.where} does not answer wg`);
        const plan = this.plan(managed, dump.peers);
        await this.applyPlan(managed, plan);
        if (plan.set.length + plan.remove.length > 0) {
          this.context.logger.debug({ device: managed.device.name, set: plan.set.length, removed: plan.remove.length, initiated: plan.initiate.length, why }, "programmed wireguard peers");
        }
      } catch (error) {
        this.metrics.failures.inc({ backend: this.type });
        this.context.logger.error({ err: error, device: managed.device.name, why }, "wireguard: programming peers failed; reconcile will retry");
      } finally {
        this.metrics.programmingSeconds.observe({ backend: this.type }, (performance.now() - started) / 1000);
      }
    }
  }

  private async reconcileNow(dryRun: boolean): Promise<ReconcileReport> {
    const report: ReconcileReport = { desired: [], actual: [], changes: [] };
    for (const managed of this.devices) {
      const part = await this.reconcileDevice(managed, dryRun);
      report.desired.push(...part.desired);
      report.actual.push(...part.actual);
      report.changes.push(...part.changes);
    }
    return report;
  }

  private async reconcileDevice(managed: ManagedDevice, dryRun: boolean): Promise<ReconcileReport> {
    const own = this.ownLease;
    const { device } = managed;
    const name = device.name;
    const deviceChanges = await this.ensureDevice(managed, dryRun);
    if (!own) return { desired: [], actual: [], changes: deviceChanges };
    const served = this.desiredPeers(managed);
    const desired: TunObject[] = [{ kind: "tun-device", device: name }];
    if (managed.ipv4) {
      desired.push(
        { kind: "tun-address", address: `${formatIpv4(ownIpv4Subnet(own).network)}/32`, device: name },
        { kind: "tun-route", destination: ipv4NetworkOf(this.context.network, "wireguard").toString(), device: name },
      );
    }
    if (managed.ipv6) {
      desired.push(
        { kind: "tun-address", address: `${formatIpv6(ownIpv6Subnet(own).network)}/128`, device: name },
        { kind: "tun-route", destination: this.ipv6Network().toString(), device: name },
      );
    }
    desired.push(...served.map(({ config }) => reportedPeer(name, config)));
    const absent = deviceChanges.some((change) => change.action === "recreate-device");
    if (dryRun && absent) {
      return { desired, actual: [], changes: [...deviceChanges, ...desired.map((object) => ({ action: "add", object }) as const)] };
    }
    const routing = await readTunRouting(name, this.spec.netns);
    const dump = await device.readDump(this.spec.options.presharedKey);
    if (!dump) throw new Error(`wireguard: ${device.where} does not answer wg`);
    // Only the families the device carries are its state (flannel-wg in Mode "separate" may hold IPv6 link-local things).
    const carried = (text: string) => (text.includes(":") ? managed.ipv6 : managed.ipv4);
    const actual: TunObject[] = [
      { kind: "tun-device", device: name },
      ...routing.addresses.filter(carried).map((address): TunObject => ({ kind: "tun-address", address, device: name })),
      ...routing.routes.filter(carried).map((destination): TunObject => ({ kind: "tun-route", destination, device: name })),
    ];
    const plan = this.plan(managed, dump.peers);
    const changing = new Set([...plan.set.map((peer) => peer.publicKey), ...plan.remove]);
    // Peers in sync show as themselves; changed ones as the device holds them (removed) and as wanted (added).
    const inSync = served.filter(({ config }) => !changing.has(config.publicKey));
    actual.push(...inSync.map(({ config }) => reportedPeer(name, config)));
    const heldChanging = dump.peers.filter((peer) => changing.has(peer.publicKey)).map((peer) => reportedPeer(name, peer));
    actual.push(...heldChanging);
    const routingChanges = tunChanges(desired.filter((object) => object.kind !== "wireguard-peer"), actual.filter((object) => object.kind !== "wireguard-peer"));
    const setKeys = new Set(plan.set.map((set) => set.publicKey));
    const peerChanges: ReconcileChange[] = [
      ...heldChanging.map((object) => ({ action: "remove", object }) as const),
      ...served.filter(({ config }) => setKeys.has(config.publicKey)).map(({ config }) => ({ action: "add", object: reportedPeer(name, config) }) as const),
    ];
    const changes: ReconcileChange[] = [...deviceChanges, ...routingChanges, ...peerChanges];
    if (!dryRun && routingChanges.length + peerChanges.length > 0) {
      this.metrics.repairs.inc({ backend: this.type }, routingChanges.length + peerChanges.length);
      this.context.logger.warn({ device: name, changes: changes.map(describeReconcileChange) }, "reconcile: repairing the WireGuard device that drifted from the lease set");
      if (routingChanges.length > 0) await this.addressDevice(managed, own);
      await this.applyPlan(managed, plan);
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

/** A peer in the report's terms, as weft configures it or as the device holds it (wg's own fields). */
function reportedPeer(device: string, peer: WgPeerConfig | WgPeerState): TunObject {
  return { kind: "wireguard-peer", device, publicKey: peer.publicKey, endpoint: peer.endpoint, allowedIps: [...peer.allowedIps] };
}
