import { formatIpv4, parseIpv4, type Ipv4Subnet } from "../net/ipv4.js";
import { parseIpv6, type Ipv6Number, type Ipv6Subnet } from "../net/ipv6.js";
import { normalizeMac } from "../net/mac.js";
import { shapeCounters, type EngineCounters } from "./counters.js";
import { loadNativeAddon, type NativeAddon, type NativeEngineFds, type NativeFeatures, type NativeHandle } from "./native-addon.js";
import {
  DEFAULT_WIREGUARD_TIMERS,
  WireguardSessions,
  type HandshakeDefence,
  type PeerSessionStatus,
  type SessionLogger,
  type WireguardTimers,
} from "./wireguard/sessions.js";
import { publicKeyOf } from "./wireguard/noise.js";

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
   * vxlan only: the underlay interface's IPv6 address. An IPv6-only socket per queue binds to it
   * (same port) and IPv6 peers (PeerRoute.ipv6) are reached over it, as flannel-v6.<VNI> does.
   */
  bindAddressV6?: string;
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

/** A peer's IPv6 half (vxlan mode, dual-stack lease): its IPv6 subnet, PublicIPv6 and the VtepMAC of its BackendV6Data. */
export interface PeerRouteV6 {
  subnet: Ipv6Subnet;
  publicIPv6: string;
  vtepMac: string;
}

export interface PeerRoute {
  subnet: Ipv4Subnet;
  publicIP: string;
  /** Required in vxlan mode. */
  vtepMac?: string;
  /** vxlan mode on an engine with bindAddressV6: the peer's IPv6 subnet, routed over the IPv6 underlay. */
  ipv6?: PeerRouteV6;
  /** Required in wireguard mode: the peer's static public key (base64) and its listen port. */
  publicKey?: string;
  port?: number;
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

  /** wireguard mode: the handshake side, its timer and which peer key each subnet routes to. */
  private sessions: WireguardSessions | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private readonly subnetKeys = new Map<string, string>();

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

  /** Called once by openEngine in wireguard mode. */
  attachSessions(sessions: WireguardSessions, tickMs: number): void {
    this.sessions = sessions;
    this.ticker = setInterval(() => {
      if (this.handle) sessions.tick();
    }, tickMs);
    this.ticker.unref();
  }

  wireguardStatus(): WireguardStatus | undefined {
    const sessions = this.sessions;
    if (!sessions) return undefined;
    return {
      publicKey: sessions.publicKey.toString("base64"), handshakesCompleted: sessions.handshakesCompleted, handshakeDrops: { ...sessions.drops },
      underLoad: sessions.underLoad, cookieRepliesSent: sessions.cookieRepliesSent, peers: sessions.status(),
    };
  }

  setWireguardPrivateKey(privateKey: Buffer): void {
    if (!this.sessions) throw new Error(`engine on ${this.tunName}: a WireGuard key needs an engine in wireguard mode (this one is ${this.mode})`);
    if (privateKey.length !== 32) throw new Error(`engine on ${this.tunName}: a WireGuard private key is 32 bytes, got ${privateKey.length}`);
    this.sessions.setStaticKeys({ privateKey: Buffer.from(privateKey), publicKey: publicKeyOf(privateKey) });
  }

  setPeer(route: PeerRoute): void {
    const publicIp = parseIpv4(route.publicIP, `PublicIP of peer ${route.subnet}`);
    if (this.sessions) {
      this.setWireguardPeer(route, publicIp, this.sessions);
      return;
    }
    if (this.mode === "vxlan" && route.vtepMac === undefined) {
      throw new Error(`peer ${route.subnet}: a VtepMAC is required by the userspace vxlan engine`);
    }
    const mac = route.vtepMac === undefined ? undefined : macBuffer(route.vtepMac, `VtepMAC of peer ${route.subnet}`);
    // Everything is checked before either family is programmed: a bad IPv6 half changes nothing.
    const v6 = route.ipv6 && this.nativeRouteV6(route.subnet, route.ipv6);
    this.addon.setPeer(this.live(), route.subnet.network, route.subnet.prefixLength, publicIp, mac);
    if (v6) this.addon.setPeer6(this.live(), v6.network, v6.prefix, v6.publicIp, v6.mac);
  }

  private nativeRouteV6(peer: Ipv4Subnet, route: PeerRouteV6): { network: Buffer; prefix: number; publicIp: Buffer; mac: Buffer } {
    if (!this.features.ipv6Underlay) {
      throw new Error(`peer ${peer}: IPv6 subnet ${route.subnet} needs an engine opened with bindAddressV6 (an IPv6 underlay address)`);
    }
    return {
      network: ipv6Buffer(route.subnet.network),
      prefix: route.subnet.prefixLength,
      publicIp: ipv6Buffer(parseIpv6(route.publicIPv6, `PublicIPv6 of peer ${route.subnet}`)),
      mac: macBuffer(route.vtepMac, `VtepMAC (BackendV6Data) of peer ${route.subnet}`),
    };
  }

  removePeerV6(subnet: Ipv6Subnet): boolean {
    if (!this.features.ipv6Underlay) return false;
    return this.addon.removePeer6(this.live(), ipv6Buffer(subnet.network), subnet.prefixLength);
  }

  removePeer(subnet: Ipv4Subnet): boolean {
    const removed = this.addon.removePeer(this.live(), subnet.network, subnet.prefixLength);
    const key = this.subnetKeys.get(subnet.toString());
    this.subnetKeys.delete(subnet.toString());
    if (key !== undefined) this.dropUnroutedKey(key);
    return removed;
  }

  /** The peer (by key) gets or keeps its session state; the subnet routes to it (its AllowedIPs). */
  private setWireguardPeer(route: PeerRoute, publicIp: number, sessions: WireguardSessions): void {
    if (route.publicKey === undefined || route.port === undefined) {
      throw new Error(`peer ${route.subnet}: a PublicKey and a port are required by the wireguard engine`);
    }
    const key = Buffer.from(route.publicKey, "base64");
    if (key.length !== 32) throw new Error(`peer ${route.subnet}: PublicKey "${route.publicKey}" is not a base64 Curve25519 key`);
    const id = sessions.upsertPeer(key, { ip: publicIp, port: route.port });
    this.addon.setPeer(this.live(), route.subnet.network, route.subnet.prefixLength, publicIp, undefined, id);
    const subnet = route.subnet.toString();
    const previous = this.subnetKeys.get(subnet);
    this.subnetKeys.set(subnet, route.publicKey);
    // A lease whose key changed (rotation): the old key's sessions go once nothing routes to it,
    // and the new key is handshaken at once rather than on the next packet (which may be the
    // other side's, sent on a session we just dropped).
    if (previous !== undefined && previous !== route.publicKey) {
      this.dropUnroutedKey(previous);
      sessions.handle({ kind: "want", peer: id });
    }
  }

  private dropUnroutedKey(key: string): void {
    if (!this.sessions || [...this.subnetKeys.values()].includes(key)) return;
    this.sessions.removePeer(Buffer.from(key, "base64"));
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
    if (this.sessions) throw new Error(`engine on ${this.tunName}: a wireguard engine cannot be handed over (its sessions live in this process)`);
    const handle = this.live();
    this.handle = undefined;
    return this.addon.detach(handle);
  }

  close(): void {
    if (!this.handle) return;
    const handle = this.handle;
    if (this.ticker) clearInterval(this.ticker);
    this.sessions?.close();
    this.handle = undefined;
    this.addon.close(handle);
  }
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
  let sessions: WireguardSessions | undefined;
  // Validate here so the error names the option rather than coming back from inet_pton.
  formatIpv4(parseIpv4(options.bindAddress, "engine bindAddress"));
  if (options.icmpSource !== undefined) parseIpv4(options.icmpSource, "engine icmpSource");
  if (options.bindAddressV6 !== undefined) {
    if (options.mode !== "vxlan") throw new Error(`openEngine: bindAddressV6 ${options.bindAddressV6}: IPv6 is forwarded in vxlan mode only`);
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
              sessions?.handle(event);
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
  const engine = new NativeEngine(addon, options.mode, handle);
  if (wg) {
    const local = { privateKey: Buffer.from(wg.privateKey), publicKey: publicKeyOf(wg.privateKey) };
    sessions = new WireguardSessions(
      {
        setPeer: (id, ip, port) => addon.wgSetPeer(handle, id, ip, port),
        removePeer: (id) => addon.wgRemovePeer(handle, id),
        setKeypair: (id, li, ri, send, recv, initiator) => addon.wgSetKeypair(handle, id, li, ri, send, recv, initiator),
        clearKeypairs: (id) => addon.wgClearKeypairs(handle, id),
        stats: (id) => addon.wgPeerStats(handle, id),
        send: (ip, port, message) => addon.wgSend(handle, ip, port, message),
        sendKeepalive: (id) => addon.wgSendKeepalive(handle, id),
        mac: (key, data, outLen) => addon.blake2sMac(key, data, outLen),
      },
      {
        local,
        presharedKey: wg.presharedKey,
        timers,
        persistentKeepaliveMs: (wg.persistentKeepaliveSeconds ?? 0) * 1000,
        logger: wg.logger,
        ...(wg.defence ? { defence: wg.defence } : {}),
      },
    );
    // The timers need a resolution well below the shortest of them (REKEY_TIMEOUT, 5 s).
    engine.attachSessions(sessions, Math.max(50, Math.min(500, timers.rekeyTimeoutMs / 10)));
  }
  return engine;
}
