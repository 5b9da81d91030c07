import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { errorMessage } from "../errors/error-message.js";

/**
 * The compiled addon (native/, built by `npm run build:native`) and the exact shape of what it
 * exports. Only src/engine/ talks to it; addresses cross as host-order uint32 numbers.
 */
export interface NativeEngineOptions {
  mode: "udp" | "vxlan";
  tunName: string;
  netnsPath?: string;
  bindAddress: string;
  port: number;
  vni?: number;
  vtepMac?: Buffer;
  mtu: number;
  icmpSource?: string;
  offloads?: boolean;
  socketBuffer?: number;
  /** 1..8: TUN queues (IFF_MULTI_QUEUE) and SO_REUSEPORT sockets, each with its own thread(s). */
  queues?: number;
  /** One thread per queue for both directions instead of one per direction. */
  sharedThread?: boolean;
}

declare const handleBrand: unique symbol;
/** An opaque external owned by the addon. */
export type NativeHandle = { readonly [handleBrand]: true };

export interface NativeFeatures {
  tunName: string;
  /** TUN queues = sockets; each has an inside and an outside thread (or one shared thread). */
  queues: number;
  sharedThread: boolean;
  /** TUN opened with IFF_VNET_HDR + TSO: one read carries a TCP super-packet. */
  vnetHeader: boolean;
  /** USO4|USO6 accepted: UDP super-packets from the TUN too. */
  tunUdpOffload: boolean;
  udpGso: boolean;
  udpGro: boolean;
  /** queues > 1: datagrams go to the socket of their inner flow (reuseport CBPF), so a flow stays in order. */
  reuseportFlow: boolean;
}

export interface NativeAddon {
  open(options: NativeEngineOptions): NativeHandle;
  setPeer(handle: NativeHandle, network: number, prefix: number, publicIp: number, mac?: Buffer): void;
  removePeer(handle: NativeHandle, network: number, prefix: number): boolean;
  counters(handle: NativeHandle): Float64Array;
  counterNames(): string[];
  /** WEFT_MAX_QUEUES: the most queues open() accepts. */
  maxQueues(): number;
  info(handle: NativeHandle): NativeFeatures;
  close(handle: NativeHandle): void;
  /** sd_notify: sends `state` ("READY=1\nSTATUS=…") to $NOTIFY_SOCKET's path or @abstract name; throws naming the socket. */
  notify(socketPath: string, state: string): void;
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
