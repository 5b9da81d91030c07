import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { errorMessage } from "../errors/error-message.js";

/**
 * The compiled addon (native/, built by `npm run build:native`) and the exact shape of what it
 * exports. Only src/engine/ talks to it; IPv4 addresses cross as host-order uint32 numbers,
 * IPv6 addresses as 16-byte Buffers (network order).
 */
export interface NativeEngineOptions {
  mode: "udp" | "vxlan" | "wireguard";
  tunName: string;
  netnsPath?: string;
  bindAddress: string;
  port: number;
  vni?: number;
  vtepMac?: Buffer;
  mtu: number;
  icmpSource?: string;
  /** vxlan and wireguard mode: open an IPv6-only socket per queue bound to this address (port, or portV6); IPv6 peers need it. */
  bindAddressV6?: string;
  /** wireguard mode: the IPv6 sockets' port (the IPv6 interface's ListenPortV6); default port. */
  portV6?: number;
  /** wireguard mode with bindAddressV6: the IPv6 sockets are a second interface (default) or serve the one interface (iface 0). */
  ipv6Interface?: "separate" | "shared";
  /** Source of ICMPv6 errors written into the TUN (the TUN's own IPv6 address); none if absent. */
  icmpSourceV6?: string;
  /** Largest inner IPv6 packet the IPv6 underlay carries whole (bigger: ICMPv6 packet too big); 0: mtu. */
  mtuV6?: number;
  offloads?: boolean;
  socketBuffer?: number;
  /** TUNSETPERSIST: the device outlives the process. */
  persist?: boolean;
  /** No thread runs until start(handle): routes can be set before the first packet is read. */
  paused?: boolean;
  /** Take these fds (a detached engine's, one per queue) instead of opening the TUN and sockets. */
  adopt?: NativeEngineFds;
  /** 1..8: TUN queues (IFF_MULTI_QUEUE) and SO_REUSEPORT sockets, each with its own thread(s). */
  queues?: number;
  /** One thread per queue for both directions instead of one per direction. */
  sharedThread?: boolean;
  /** After moving packets, poll without sleeping this long before blocking (0: block at once). */
  spinMicroseconds?: number;
  /** wireguard mode, required: handshake messages and "handshake wanted" notices, on the JS thread. */
  onEvent?: (event: NativeWireguardEvent) => void;
  /** wireguard mode: the protocol's timers (defaults 120 s, 180 s, 10 s, 5 s, 2^60, 2^64 - 2^13 - 1). */
  rekeyAfterMs?: number;
  rejectAfterMs?: number;
  keepaliveMs?: number;
  rekeyTimeoutMs?: number;
  rekeyAfterMessages?: number;
  rejectAfterMessages?: number;
}

/** Which logical WireGuard interface: 0 the IPv4 one (ListenPort), 1 the IPv6 one (bindAddressV6, portV6). */
export type NativeWireguardInterface = 0 | 1;

/** `address`: host-order IPv4 number, or a 16-byte IPv6 Buffer (a message on an IPv6 socket). */
export type NativeWireguardEvent =
  | { kind: "message"; iface: NativeWireguardInterface; address: number | Buffer; port: number; data: Buffer }
  | { kind: "want"; iface: NativeWireguardInterface; peer: number };

/** A detached engine's fds, per queue: TUN queues, IPv4 sockets, IPv6 sockets (empty without an IPv6 underlay). */
export interface NativeEngineFds {
  tun: number[];
  udp: number[];
  udp6: number[];
}

/** wgPeerStats(): times in ms since the event (null: never). */
export interface NativeWireguardPeerStats {
  hasCurrent: boolean;
  hasNext: boolean;
  currentInitiator: boolean;
  currentAgeMs: number | null;
  currentSendCounter: number;
  sinceTxMs: number | null;
  sinceRxMs: number | null;
  sinceDataTxMs: number | null;
  sinceDataRxMs: number | null;
  txBytes: number;
  rxBytes: number;
  /** IPv4 host order; a 16-byte Buffer on the IPv6 interface. */
  endpointIp: number | Buffer;
  endpointPort: number;
}

declare const handleBrand: unique symbol;
/** An opaque external owned by the addon. */
export type NativeHandle = { readonly [handleBrand]: true };

export interface NativeFeatures {
  tunName: string;
  /** TUN queues = sockets; each has an inside and an outside thread (or one shared thread). */
  queues: number;
  sharedThread: boolean;
  spinMicroseconds: number;
  /** TUN opened with IFF_VNET_HDR + TSO: one read carries a TCP super-packet. */
  vnetHeader: boolean;
  /** USO4|USO6 accepted: UDP super-packets from the TUN too. */
  tunUdpOffload: boolean;
  udpGso: boolean;
  udpGro: boolean;
  /** queues > 1: datagrams go to the socket of their inner flow (reuseport CBPF), so a flow stays in order. */
  reuseportFlow: boolean;
  /** An IPv6 underlay socket per queue is open (bindAddressV6). */
  ipv6Underlay: boolean;
  /** UDP_SEGMENT on the IPv6 sockets (false without them). */
  udpGsoV6: boolean;
}

export interface NativeAddon {
  open(options: NativeEngineOptions): NativeHandle;
  setPeer(handle: NativeHandle, network: number, prefix: number, publicIp: number, mac?: Buffer, wgPeer?: number): void;
  removePeer(handle: NativeHandle, network: number, prefix: number): boolean;
  /**
   * With bindAddressV6: IPv6 subnet (16-byte network, 0..128) → PublicIPv6 (16 bytes) and, vxlan
   * mode, v6 VtepMAC or, wireguard mode, the IPv6 interface's peer id (its AllowedIPs).
   */
  setPeer6(handle: NativeHandle, network: Buffer, prefix: number, publicIp6: Buffer, mac?: Buffer, wgPeer?: number): void;
  removePeer6(handle: NativeHandle, network: Buffer, prefix: number): boolean;
  counters(handle: NativeHandle): Float64Array;
  counterNames(): string[];
  /** WEFT_MAX_QUEUES: the most queues open() accepts. */
  maxQueues(): number;
  info(handle: NativeHandle): NativeFeatures;
  close(handle: NativeHandle): void;
  /** The running engine's fds (it keeps owning them). */
  fds(handle: NativeHandle): NativeEngineFds;
  /** Starts the threads of an engine opened paused. */
  start(handle: NativeHandle): void;
  /** Stops the threads and returns the TUN queue and socket fds, still open (the handle is closed). */
  detach(handle: NativeHandle): NativeEngineFds;
  /** The holder's listening AF_UNIX socket at `path` (0600; a stale one is replaced). */
  fdListen(path: string): number;
  /** Blocks until a process of our user connected and got `fds` (true) or `timeoutMs` passed (false). */
  fdServe(listenFd: number, fds: readonly number[], timeoutMs: number): boolean;
  /** The fds a holder at `path` hands over (FD_CLOEXEC); [] when nobody listens there. Throws on a broken hand-over. */
  fdReceive(path: string, timeoutMs: number): number[];
  closeFd(fd: number): void;
  /** sd_notify: sends `state` ("READY=1\nSTATUS=…") to $NOTIFY_SOCKET's path or @abstract name; throws naming the socket. */
  notify(socketPath: string, state: string, fds?: readonly number[]): void;
  /** `iface` (default 0) names the interface; ids are per interface; its endpoints are of its family. */
  wgSetPeer(handle: NativeHandle, id: number, endpointIp: number | Buffer, port: number, iface?: NativeWireguardInterface): void;
  wgRemovePeer(handle: NativeHandle, id: number, iface?: NativeWireguardInterface): boolean;
  wgSetKeypair(
    handle: NativeHandle, id: number, localIndex: number, remoteIndex: number, sendKey: Buffer, recvKey: Buffer, initiator: boolean, iface?: NativeWireguardInterface,
  ): void;
  wgClearKeypairs(handle: NativeHandle, id: number, iface?: NativeWireguardInterface): boolean;
  /**
   * The handshake admission's mac1 key, HASH("mac1----" || our public key), for the interface;
   * null: no mac1 check in C. Before a handshake message is queued for JavaScript, the outside
   * thread checks its mac1 and, while the queue is loaded, holds its source to a token bucket
   * (native/README.md "WireGuard").
   */
  wgSetMac1Key(handle: NativeHandle, key: Buffer | null, iface?: NativeWireguardInterface): void;
  wgPeerStats(handle: NativeHandle, id: number, iface?: NativeWireguardInterface): NativeWireguardPeerStats | null;
  /** A handshake message from queue 0's socket of the address's family. Throws with errno text. */
  wgSend(handle: NativeHandle, ip: number | Buffer, port: number, message: Buffer): void;
  /** Seals an empty transport message on the current session; false without one. */
  wgSendKeepalive(handle: NativeHandle, id: number, iface?: NativeWireguardInterface): boolean;
  /** Keyed BLAKE2s (OpenSSL BLAKE2SMAC), WireGuard's MAC. */
  blake2sMac(key: Buffer, data: Buffer, outLen: number): Buffer;
}

/** native/build/Release/weft_engine.node, relative to the package root (this file is two levels down in src/ and dist/). */
export const ADDON_PATH = fileURLToPath(new URL("../../native/build/Release/weft_engine.node", import.meta.url));

let loaded: NativeAddon | undefined;

export function loadNativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require(ADDON_PATH) as NativeAddon;
  } catch (error) {
    throw new Error(
      `cannot load the weft forwarding engine ${ADDON_PATH}: ${errorMessage(error)} ` +
        "(build it with `npm run build:native`; needs gcc, make and python3)",
    );
  }
  return loaded;
}
