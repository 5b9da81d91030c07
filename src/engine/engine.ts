import { formatIpv4, parseIpv4, type Ipv4Subnet } from "../net/ipv4.js";
import { parseIpv6, type Ipv6Number, type Ipv6Subnet } from "../net/ipv6.js";
import { normalizeMac } from "../net/mac.js";
import { shapeCounters, type EngineCounters } from "./counters.js";
import {
  loadNativeAddon, type NativeAddon, type NativeEngineFds, type NativeFeatures, type NativeHandle, type NativeWireguardEvent, type NativeWireguardInterface,
} from "./native-addon.js";
import {
  DEFAULT_WIREGUARD_TIMERS,
  WireguardSessions,
  type HandshakeDefence,
  type PeerSessionStatus,
  type SessionLogger,
  type WireguardTimers,
} from "./wireguard/sessions.js";
import { publicKeyOf } from "./wireguard/noise.js";
import { RoutedPeers } from "./wireguard/routed-peers.js";

/**
 * The userspace data path: a TUN device (inside) and a UDP socket (outside) joined by native
 * threads (two per queue, see `queues`). TypeScript only opens it, tells it where each peer subnet lives and reads
 * its counters; no packet ever reaches JavaScript.
 */
export type EngineMode = "udp" | "vxlan" | "wireguard";

/** wireguard mode: the static key, PSK and timers; the handshake runs in this process (sessions.ts). */
export interface WireguardEngineOptions {
  /** Our Curve25519 private key (32 bytes). */
  privateKey: Buffer;
  presharedKey?: Buffer;
  /** The protocol's timers, shortened by tests; defaults DEFAULT_WIREGUARD_TIMERS. */
  timers?: Partial<WireguardTimers>;
  /** For tests: REKEY_AFTER_MESSAGES / REJECT_AFTER_MESSAGES (defaults 2^60, 2^64 - 2^13 - 1). */
  rekeyAfterMessages?: number;
  rejectAfterMessages?: number;
  /** PersistentKeepaliveInterval in seconds; 0 (default) off. */
  persistentKeepaliveSeconds?: number;
  logger?: SessionLogger;
  /** For tests: the under-load threshold and the per-source rate limits (default DEFAULT_HANDSHAKE_DEFENCE). */
  defence?: HandshakeDefence;
}

export interface EngineOptions {
  /** "udp": flannel's udp wire format (raw IPv4 in UDP); "vxlan": RFC 7348 with inner Ethernet;
   * "wireguard": WireGuard transport messages (the handshake in TypeScript, per packet in C). */
  mode: EngineMode;
  /** Device name, or a kernel template such as "flannel%d". */
  tunName: string;
  mtu: number;
  /** The underlay interface address the socket binds to. */
  bindAddress: string;
  /** Local and remote UDP port; default 8285 (udp) or 8472 (vxlan). */
  port?: number;
  /** vxlan only. Default 1. */
  vni?: number;
  /** vxlan only, required: our VTEP MAC ("6a:96:90:47:79:a6"). */
  vtepMac?: string;
  /** Source of ICMP errors written back into the TUN (the TUN's own address); none if absent. */
  icmpSource?: string;
  /**
   * vxlan and wireguard: the underlay interface's IPv6 address. An IPv6-only socket per queue
   * binds to it and IPv6 peers (PeerRoute.ipv6) are reached over it: vxlan on the same port, as
   * flannel-v6.<VNI> does; wireguard on portV6, as a second WireGuard interface with its own
   * peers and sessions (flanneld's flannel-wg-v6, Mode "separate").
   */
  bindAddressV6?: string;
  /** wireguard with bindAddressV6: the IPv6 interface's port (ListenPortV6); default `port`. */
  portV6?: number;
  /**
   * wireguard with bindAddressV6: "separate" (default) makes the IPv6 sockets a second interface
   * with its own peers (Mode "separate"); "shared" makes them serve the one interface, whose peers
   * have both subnets and an endpoint of either family (flanneld's Modes "auto"/"ipv4"/"ipv6":
   * one device on ListenPort; give portV6 = port then).
   */
  ipv6Interface?: "separate" | "shared";
  /** Source of ICMPv6 errors written back into the TUN (the TUN's own IPv6 address); none if absent. */
  icmpSourceV6?: string;
  /**
   * The largest inner IPv6 packet the IPv6 underlay carries unfragmented (its MTU − 70: outer
   * IPv6 40 + UDP 8 + VXLAN 8 + Ethernet 14); bigger ones are answered with ICMPv6 packet too
   * big. Default `mtu`.
   */
  mtuV6?: number;
  /** Open the devices in this network namespace (a name under /run/netns or an absolute path). */
  netns?: string;
  /** TUN TSO/USO + UDP GSO/GRO; default true. false: one packet per syscall (for comparison). */
  offloads?: boolean;
  /** SO_SNDBUF/SO_RCVBUF bytes for the socket; default 4 MiB, 0 for the kernel default. */
  socketBuffer?: number;
  /**
   * TUN queues (IFF_MULTI_QUEUE) and SO_REUSEPORT sockets, 1..maxEngineQueues(), each queue
   * with its own thread(s); default defaultEngineQueues(). Flows spread over the queues, one
   * flow never does (see docs/dataplane.md "Multi-queue").
   */
  queues?: number;
  /**
   * One thread per queue serving both directions instead of one per direction. Default: true
   * with more than one queue, false with one (what measured best on 2 cores).
   */
  sharedThread?: boolean;
  /**
   * After a queue moved packets, its threads keep polling without sleeping for this long before
   * they block; a reply arriving meanwhile is forwarded without a thread wake-up (tens of µs in a
   * VM, four per round trip). An idle queue never spins. Default DEFAULT_SPIN_MICROSECONDS.
   */
  spinMicroseconds?: number;
  /** wireguard mode, required. */
  wireguard?: WireguardEngineOptions;
  /**
   * TUNSETPERSIST: the device, its addresses and routes outlive the process, so a daemon that
   * is killed leaves a device its successor attaches to by name (docs/dataplane.md "Restarts").
   */
  persist?: boolean;
  /** The fds of a detached engine (Engine.detach) to forward on instead of opening new ones. */
  adopt?: EngineFds; // tun may be empty: a new TUN on the handed-over sockets
  /**
   * No packet is read until start(): with adopt, what queued on the fds must meet the peer
   * routes, or it is dropped as from an unknown sender.
   */
  paused?: boolean;
}

/** The TUN queue and socket fds of a detached engine, one per queue (udp6 empty without an IPv6 underlay). */
export type EngineFds = NativeEngineFds;

/** Every fd of a detached engine, in the order a hand-over carries them: TUN queues, IPv4 sockets, IPv6 sockets. */
export function engineFdList(fds: EngineFds): number[] {
  return [...fds.tun, ...fds.udp, ...fds.udp6];
}

/**
 * The most queues the engine accepts: the addon's WEFT_MAX_QUEUES. A function, not a constant, so
 * only what opens an engine (or names a queue count) loads the addon: a kernel-backend daemon
 * runs without it.
 */
export function maxEngineQueues(): number {
  return loadNativeAddon().maxQueues();
}

/**
 * 1 queue. Measured on a 2-vCPU VM in 4 runs (docs/dataplane.md "Multi-queue"): 2 queues
 * with one thread each moved 4 TCP streams 6–22 % faster than 1 queue with a thread per
 * direction, but a single stream 1–17 % slower in 7 of 8 comparisons (its data and ACKs then
 * share one thread). That is a trade-off, not a free win, so the default stays as it was and
 * `"Queues": 2` is the setting for hosts with many concurrent flows.
 */
export function defaultEngineQueues(): number {
  return 1;
}

/**
 * A peer's IPv6 half (dual-stack lease): its IPv6 subnet, PublicIPv6 and, from its BackendV6Data,
 * the VtepMAC (vxlan mode) or the PublicKey and Port of its IPv6 WireGuard interface (wireguard).
 */
export interface PeerRouteV6 {
  subnet: Ipv6Subnet;
  publicIPv6: string;
  /** Required in vxlan mode. */
  vtepMac?: string;
  /** Required in wireguard mode. */
  publicKey?: string;
  port?: number;
}

export interface PeerRoute {
  subnet: Ipv4Subnet;
  publicIP: string;
  /** Required in vxlan mode. */
  vtepMac?: string;
  /** An engine with bindAddressV6: the peer's IPv6 subnet, routed over the IPv6 underlay (wireguard: to the IPv6 interface's peer). */
  ipv6?: PeerRouteV6;
  /** Required in wireguard mode: the peer's static public key (base64) and its listen port. */
  publicKey?: string;
  port?: number;
  /**
   * wireguard mode on a shared interface (ipv6Interface "shared"): the peer's endpoint is
   * [ipv6.publicIPv6]:port instead of PublicIP:port; both subnets route to its one peer state.
   */
  endpointIPv6?: boolean;
}

export interface Engine {
  readonly mode: EngineMode;
  readonly tunName: string;
  readonly features: Readonly<NativeFeatures>;
  /** Adds or replaces the route for `subnet` (and for `ipv6.subnet`); takes effect for the next batch of packets. */
  setPeer(route: PeerRoute): void;
  /** Returns false if there was no route for `subnet`. */
  removePeer(subnet: Ipv4Subnet): boolean;
  /** Removes an IPv6 route set through PeerRoute.ipv6; false if there was none. */
  removePeerV6(subnet: Ipv6Subnet): boolean;
  counters(): EngineCounters;
  /** Stops the threads and closes the TUN fds (the device goes, unless it persists) and the sockets. Idempotent. */
  close(): void;
  /**
   * Stops the threads (each finishes the batch in hand) and returns the TUN and socket fds still
   * open, for the next engine to adopt; this engine is closed after. Not in wireguard mode:
   * its sessions live in this process.
   */
  detach(): EngineFds;
  /** Starts forwarding on an engine opened paused; a no-op otherwise. */
  start(): void;
  /** The TUN queue and socket fds it forwards on (still its own: for a store that keeps copies). */
  fds(): EngineFds;
  readonly closed: boolean;
  /** wireguard mode: our public key (base64) and each peer's handshake state; undefined otherwise. */
  wireguardStatus(): WireguardStatus | undefined;
  /**
   * wireguard mode: a rotated static private key (32 bytes), used for every handshake from now
   * on; sessions stay until handshakes with the new key replace them. Throws in other modes.
   */
  setWireguardPrivateKey(privateKey: Buffer): void;
}

export interface WireguardStatus {
  publicKey: string;
  handshakesCompleted: number;
  handshakeDrops: Record<string, number>;
  /** Under load now (whitepaper §5.3): handshakes need a valid mac2. */
  underLoad: boolean;
  cookieRepliesSent: number;
  peers: PeerSessionStatus[];
}

const DEFAULT_SOCKET_BUFFER = 4 << 20;
/** Off: on 2 shared cores spinning cost more than the wake-ups it saved (docs/dataplane.md "Latency"). */
const DEFAULT_SPIN_MICROSECONDS = 0;

/** The IPv6 interface's log lines say so (the same peer key may be on both). */
function childLogger(logger: SessionLogger, fields: object): SessionLogger {
  return {
    debug: (object, message) => logger.debug({ ...fields, ...object }, message),
    info: (object, message) => logger.info({ ...fields, ...object }, message),
    warn: (object, message) => logger.warn({ ...fields, ...object }, message),
  };
}

function netnsPath(netns: string | undefined): string | undefined {
  if (netns === undefined) return undefined;
  return netns.startsWith("/") ? netns : `/run/netns/${netns}`;
}

function macBuffer(text: string, what: string): Buffer {
  return Buffer.from(normalizeMac(text, what).split(":").map((part) => parseInt(part, 16)));
}

/** An IPv6 address as the addon takes it: 16 bytes, network order. */
function ipv6Buffer(value: Ipv6Number): Buffer {
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) bytes[i] = Number((value >> BigInt(8 * (15 - i))) & 0xffn);
  return bytes;
}

class NativeEngine implements Engine {
  readonly tunName: string;
  readonly features: Readonly<NativeFeatures>;
  private handle: NativeHandle | undefined;
  private readonly names: string[];

  /**
   * wireguard mode: the IPv4 interface's peers and handshakes (with ipv6Interface "shared" the
   * one interface's, both families), the IPv6 one's (bindAddressV6, "separate"), their timer.
   */
  private wg: RoutedPeers | undefined;
  private wg6: RoutedPeers | undefined;
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly addon: NativeAddon,
    readonly mode: EngineMode,
    handle: NativeHandle,
  ) {
    this.handle = handle;
    this.features = Object.freeze(addon.info(handle));
    this.tunName = this.features.tunName;
    this.names = addon.counterNames();
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  private live(): NativeHandle {
    if (!this.handle) throw new Error(`engine on ${this.tunName} is closed; open a new one`);
    return this.handle;
  }

  /** Called once by openEngine in wireguard mode, with the IPv6 interface's sessions when it has one. */
  attachSessions(sessions: WireguardSessions, sessionsV6: WireguardSessions | undefined, tickMs: number): void {
    this.wg = new RoutedPeers(sessions);
    this.wg6 = sessionsV6 && new RoutedPeers(sessionsV6);
    this.ticker = setInterval(() => {
      if (!this.handle) return;
      sessions.tick();
      sessionsV6?.tick();
    }, tickMs);
    this.ticker.unref();
  }

  /**
   * Both interfaces' handshake state, as one (drops and counts summed, peers listed side by side).
   * bad_mac1 counts the messages the engine's admission dropped too (outside.drop.handshake_bad_mac1):
   * the same check, made before the queue.
   */
  wireguardStatus(): WireguardStatus | undefined {
    if (!this.wg) return undefined;
    const all = [this.wg.sessions, ...(this.wg6 ? [this.wg6.sessions] : [])];
    const drops: Record<string, number> = {};
    for (const sessions of all) for (const [reason, n] of Object.entries(sessions.drops)) drops[reason] = (drops[reason] ?? 0) + n;
    if (this.handle) drops.bad_mac1 = (drops.bad_mac1 ?? 0) + (this.counters().outside.drops.handshake_bad_mac1 ?? 0);
    return {
      publicKey: this.wg.sessions.publicKey.toString("base64"),
      handshakesCompleted: all.reduce((sum, sessions) => sum + sessions.handshakesCompleted, 0),
      handshakeDrops: drops,
      underLoad: all.some((sessions) => sessions.underLoad),
      cookieRepliesSent: all.reduce((sum, sessions) => sum + sessions.cookieRepliesSent, 0),
      peers: all.flatMap((sessions) => sessions.status()),
    };
  }

  /** Both interfaces take the new key (flanneld too has one key file for flannel-wg and flannel-wg-v6). */
  setWireguardPrivateKey(privateKey: Buffer): void {
    if (!this.wg) throw new Error(`engine on ${this.tunName}: a WireGuard key needs an engine in wireguard mode (this one is ${this.mode})`);
    if (privateKey.length !== 32) throw new Error(`engine on ${this.tunName}: a WireGuard private key is 32 bytes, got ${privateKey.length}`);
    for (const routed of [this.wg, this.wg6]) routed?.sessions.setStaticKeys({ privateKey: Buffer.from(privateKey), publicKey: publicKeyOf(privateKey) });
  }

  /** An engine event for the interface it names (a message on the IPv6 socket is the IPv6 interface's). */
  wireguardEvent(event: NativeWireguardEvent): void {
    const routed = event.iface === 1 ? this.wg6 : this.wg;
    if (!routed) return;
    routed.sessions.handle(event.kind === "want" ? { kind: "want", peer: event.peer } : { kind: "message", address: event.address, port: event.port, data: event.data });
  }

  setPeer(route: PeerRoute): void {
    const publicIp = parseIpv4(route.publicIP, `PublicIP of peer ${route.subnet}`);
    if (this.wg) {
      this.setWireguardPeer(route, publicIp, this.wg);
      return;
    }
    if (this.mode === "vxlan" && route.vtepMac === undefined) {
      throw new Error(`peer ${route.subnet}: a VtepMAC is required by the userspace vxlan engine`);
    }
    const mac = route.vtepMac === undefined ? undefined : macBuffer(route.vtepMac, `VtepMAC of peer ${route.subnet}`);
    // Everything is checked before either family is programmed: a bad IPv6 half changes nothing.
    const v6 = route.ipv6 && this.vxlanRouteV6(route.subnet, route.ipv6);
    this.addon.setPeer(this.live(), route.subnet.network, route.subnet.prefixLength, publicIp, mac);
    if (v6) this.addon.setPeer6(this.live(), v6.network, v6.prefix, v6.publicIp, v6.mac);
  }

  private nativeRouteV6(peer: Ipv4Subnet, route: PeerRouteV6): { network: Buffer; prefix: number; publicIp: Buffer } {
    if (!this.features.ipv6Underlay) {
      throw new Error(`peer ${peer}: IPv6 subnet ${route.subnet} needs an engine opened with bindAddressV6 (an IPv6 underlay address)`);
    }
    return {
      network: ipv6Buffer(route.subnet.network),
      prefix: route.subnet.prefixLength,
      publicIp: ipv6Buffer(parseIpv6(route.publicIPv6, `PublicIPv6 of peer ${route.subnet}`)),
    };
  }

  private vxlanRouteV6(peer: Ipv4Subnet, route: PeerRouteV6): { network: Buffer; prefix: number; publicIp: Buffer; mac: Buffer } {
    if (route.vtepMac === undefined) throw new Error(`peer ${peer}: IPv6 subnet ${route.subnet} has no VtepMAC (BackendV6Data), required by the userspace vxlan engine`);
    return { ...this.nativeRouteV6(peer, route), mac: macBuffer(route.vtepMac, `VtepMAC (BackendV6Data) of peer ${route.subnet}`) };
  }

  removePeerV6(subnet: Ipv6Subnet): boolean {
    if (!this.features.ipv6Underlay) return false;
    const removed = this.addon.removePeer6(this.live(), ipv6Buffer(subnet.network), subnet.prefixLength);
    (this.wg6 ?? this.wg)?.unroute(subnet.toString());
    return removed;
  }

  removePeer(subnet: Ipv4Subnet): boolean {
    const removed = this.addon.removePeer(this.live(), subnet.network, subnet.prefixLength);
    this.wg?.unroute(subnet.toString());
    return removed;
  }

  /**
   * The peer (by key) gets or keeps its session state on the IPv4 interface and the subnet routes
   * to it (its AllowedIPs); an IPv6 half goes the same way to the IPv6 interface's own peer.
   * Everything is checked before either family is programmed.
   */
  private setWireguardPeer(route: PeerRoute, publicIp: number, wg: RoutedPeers): void {
    const key = wireguardKey(`peer ${route.subnet}`, route.publicKey, route.port);
    if (!this.wg6 && this.features.ipv6Underlay) {
      this.setSharedInterfacePeer(route, publicIp, key, wg);
      return;
    }
    if (route.endpointIPv6) throw new Error(`peer ${route.subnet}: an IPv6 endpoint needs an engine with ipv6Interface "shared"`);
    const v6 = route.ipv6 && this.wireguardRouteV6(route.subnet, route.ipv6);
    wg.route(route.subnet.toString(), key, { ip: publicIp, port: route.port! }, (id) =>
      this.addon.setPeer(this.live(), route.subnet.network, route.subnet.prefixLength, publicIp, undefined, id),
    );
    if (!v6) return;
    v6.wg6.route(v6.subnet, v6.key, { ip: v6.native.publicIp, port: v6.port }, (id) =>
      this.addon.setPeer6(this.live(), v6.native.network, v6.native.prefix, v6.native.publicIp, undefined, id),
    );
  }

  /** One interface for both families: both subnets route to the peer's one state, reached at the endpoint the route names. */
  private setSharedInterfacePeer(route: PeerRoute, publicIp: number, key: Buffer, wg: RoutedPeers): void {
    const v6 = route.ipv6 && this.nativeRouteV6(route.subnet, route.ipv6);
    if (route.endpointIPv6 && !v6) throw new Error(`peer ${route.subnet}: an IPv6 endpoint needs its IPv6 half (PublicIPv6)`);
    const endpoint = { ip: route.endpointIPv6 && v6 ? v6.publicIp : publicIp, port: route.port! };
    wg.route(route.subnet.toString(), key, endpoint, (id) =>
      this.addon.setPeer(this.live(), route.subnet.network, route.subnet.prefixLength, publicIp, undefined, id),
    );
    if (!v6 || !route.ipv6) return;
    wg.route(route.ipv6.subnet.toString(), key, endpoint, (id) => this.addon.setPeer6(this.live(), v6.network, v6.prefix, v6.publicIp, undefined, id));
  }

  private wireguardRouteV6(peer: Ipv4Subnet, route: PeerRouteV6) {
    const native = this.nativeRouteV6(peer, route);
    if (!this.wg6) throw new Error(`peer ${peer}: IPv6 subnet ${route.subnet} needs the IPv6 WireGuard interface (an engine opened with bindAddressV6)`);
    const key = wireguardKey(`peer ${peer}: IPv6 subnet ${route.subnet} (BackendV6Data)`, route.publicKey, route.port);
    return { native, key, port: route.port!, subnet: route.subnet.toString(), wg6: this.wg6 };
  }

  counters(): EngineCounters {
    return shapeCounters(this.names, this.addon.counters(this.live()));
  }

  start(): void {
    this.addon.start(this.live());
  }

  fds(): EngineFds {
    return this.addon.fds(this.live());
  }

  detach(): EngineFds {
    if (this.wg) throw new Error(`engine on ${this.tunName}: a wireguard engine cannot be handed over (its sessions live in this process)`);
    const handle = this.live();
    this.handle = undefined;
    return this.addon.detach(handle);
  }

  close(): void {
    if (!this.handle) return;
    const handle = this.handle;
    if (this.ticker) clearInterval(this.ticker);
    this.wg?.sessions.close();
    this.wg6?.sessions.close();
    this.handle = undefined;
    this.addon.close(handle);
  }
}

/** A wireguard peer's PublicKey (base64) as 32 bytes; throws naming `what` without it or a port. */
function wireguardKey(what: string, publicKey: string | undefined, port: number | undefined): Buffer {
  if (publicKey === undefined || port === undefined) throw new Error(`${what}: a PublicKey and a port are required by the wireguard engine`);
  const key = Buffer.from(publicKey, "base64");
  if (key.length !== 32) throw new Error(`${what}: PublicKey "${publicKey}" is not a base64 Curve25519 key`);
  return key;
}

/** Opens the TUN device and the socket and starts forwarding. Throws with the device/address and errno text. */
export function openEngine(options: EngineOptions): Engine {
  const addon = loadNativeAddon();
  if (options.mode === "vxlan" && options.vtepMac === undefined) {
    throw new Error("openEngine: vtepMac is required in vxlan mode (the MAC published in the lease's BackendData)");
  }
  const wg = options.mode === "wireguard" ? options.wireguard : undefined;
  if (options.mode === "wireguard" && (!wg || wg.privateKey.length !== 32)) {
    throw new Error("openEngine: wireguard.privateKey (32 bytes) is required in wireguard mode");
  }
  const timers: WireguardTimers = { ...DEFAULT_WIREGUARD_TIMERS, ...wg?.timers };
  let engine: NativeEngine | undefined;
  // Validate here so the error names the option rather than coming back from inet_pton.
  formatIpv4(parseIpv4(options.bindAddress, "engine bindAddress"));
  if (options.icmpSource !== undefined) parseIpv4(options.icmpSource, "engine icmpSource");
  if (options.bindAddressV6 !== undefined) {
    if (options.mode === "udp") throw new Error(`openEngine: bindAddressV6 ${options.bindAddressV6}: IPv6 is forwarded in vxlan and wireguard mode only`);
    parseIpv6(options.bindAddressV6, "engine bindAddressV6");
  }
  if (options.icmpSourceV6 !== undefined) parseIpv6(options.icmpSourceV6, "engine icmpSourceV6");
  const queues = options.queues ?? defaultEngineQueues();
  const maxQueues = addon.maxQueues();
  if (!Number.isInteger(queues) || queues < 1 || queues > maxQueues) {
    throw new Error(`openEngine: queues ${queues} must be an integer in 1..${maxQueues}`);
  }
  const handle = addon.open({
    mode: options.mode,
    tunName: options.tunName,
    netnsPath: netnsPath(options.netns),
    bindAddress: options.bindAddress,
    port: options.port ?? (options.mode === "vxlan" ? 8472 : options.mode === "wireguard" ? 51820 : 8285),
    vni: options.vni ?? 1,
    vtepMac: options.vtepMac === undefined ? undefined : macBuffer(options.vtepMac, "engine vtepMac"),
    mtu: options.mtu,
    icmpSource: options.icmpSource,
    bindAddressV6: options.bindAddressV6,
    ...(options.portV6 !== undefined ? { portV6: options.portV6 } : {}),
    ...(options.ipv6Interface !== undefined ? { ipv6Interface: options.ipv6Interface } : {}),
    icmpSourceV6: options.icmpSourceV6,
    mtuV6: options.mtuV6,
    offloads: options.offloads ?? true,
    socketBuffer: options.socketBuffer ?? DEFAULT_SOCKET_BUFFER,
    queues,
    sharedThread: options.sharedThread ?? queues > 1,
    spinMicroseconds: options.spinMicroseconds ?? DEFAULT_SPIN_MICROSECONDS,
    persist: options.persist ?? false,
    paused: options.paused ?? false,
    ...(options.adopt ? { adopt: options.adopt } : {}),
    ...(wg
      ? {
          // Runs as a threadsafe-function callback: an exception here would end the process.
          onEvent: (event) => {
            try {
              engine?.wireguardEvent(event);
            } catch (error) {
              wg.logger?.warn({ error: String(error) }, "wireguard: a handshake message could not be handled");
            }
          },
          rekeyAfterMs: timers.rekeyAfterMs,
          rejectAfterMs: timers.rejectAfterMs,
          keepaliveMs: timers.keepaliveMs,
          rekeyTimeoutMs: timers.rekeyTimeoutMs,
          rekeyAfterMessages: wg.rekeyAfterMessages,
          rejectAfterMessages: wg.rejectAfterMessages,
        }
      : {}),
  });
  engine = new NativeEngine(addon, options.mode, handle);
  if (wg) {
    // One handshake side per interface, each with its own DoS defence (load, cookies, rate
    // limits), as two devices have: a flood on one socket does not put the other under load.
    const sessionsOf = (iface: NativeWireguardInterface) =>
      new WireguardSessions(
        {
          setPeer: (id, ip, port) => addon.wgSetPeer(handle, id, ip, port, iface),
          removePeer: (id) => addon.wgRemovePeer(handle, id, iface),
          setKeypair: (id, li, ri, send, recv, initiator) => addon.wgSetKeypair(handle, id, li, ri, send, recv, initiator, iface),
          clearKeypairs: (id) => addon.wgClearKeypairs(handle, id, iface),
          stats: (id) => addon.wgPeerStats(handle, id, iface),
          send: (ip, port, message) => addon.wgSend(handle, ip, port, message),
          sendKeepalive: (id) => addon.wgSendKeepalive(handle, id, iface),
          mac: (key, data, outLen) => addon.blake2sMac(key, data, outLen),
          setMac1Key: (key) => addon.wgSetMac1Key(handle, key, iface),
        },
        {
          local: { privateKey: Buffer.from(wg.privateKey), publicKey: publicKeyOf(wg.privateKey) },
          presharedKey: wg.presharedKey,
          timers,
          persistentKeepaliveMs: (wg.persistentKeepaliveSeconds ?? 0) * 1000,
          logger: iface === 1 ? wg.logger && childLogger(wg.logger, { interface: "v6" }) : wg.logger,
          ...(wg.defence ? { defence: wg.defence } : {}),
        },
      );
    // The timers need a resolution well below the shortest of them (REKEY_TIMEOUT, 5 s).
    const separateV6 = options.bindAddressV6 !== undefined && (options.ipv6Interface ?? "separate") === "separate";
    engine.attachSessions(sessionsOf(0), separateV6 ? sessionsOf(1) : undefined, Math.max(50, Math.min(500, timers.rekeyTimeoutMs / 10)));
  }
  return engine;
}
