import { createRequire } from "node:module";
import { errorMessage } from "../errors/error-message.js";
import type { IpFamily } from "../net/ip-subnet.js";
import { icmpFilterMask } from "./icmp-packet.js";
import { icmp6Filter } from "./icmpv6-packet.js";

/**
 * A raw IPPROTO_ICMP (family 4) or IPPROTO_ICMPV6 (family 6) socket from the `raw-socket` package
 * (a NAN addon, an optional dependency: when it failed to build, only probing is off, with
 * ProbeUnavailableError saying why).
 *
 * Contract:
 *   - every socket has the ICMP filter set (echo reply, unreachable, time exceeded only; IPv6
 *     also packet too big), and DF on (IP_MTU_DISCOVER = IP_PMTUDISC_PROBE: DF set, the kernel's
 *     cached path MTU ignored, so a DF echo of E bytes really leaves at E bytes and the router on
 *     the path answers; IPv6: IPV6_MTU_DISCOVER = IPV6_PMTUDISC_PROBE and IPV6_DONTFRAG, without
 *     which the kernel would fragment an echo bigger than the path MTU itself);
 *   - `onPacket` gets each received packet (IPv4: the whole IPv4 packet; IPv6: the ICMPv6 message
 *     alone, as the kernel hands it over) and the sender's address, in a buffer the addon reuses
 *     for the next receive: it is borrowed for the duration of the call only (copy what must be kept);
 *   - send() resolves once the kernel took the datagram, rejects with the errno text
 *     ("Message too long" when the local route's MTU is smaller than the packet);
 *   - the socket is opened at once (ProbeUnavailableError without CAP_NET_RAW); after a socket
 *     error it is closed and the next send() opens a new one.
 */
export interface IcmpSocket {
  send(packet: Buffer, destination: string): Promise<void>;
  close(): void;
}

export class ProbeUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProbeUnavailableError";
  }
}

/** The part of raw-socket's API used here (it ships no types). */
export interface RawSocketModule {
  createSocket(options: { protocol: number; bufferSize?: number; addressFamily?: number }): RawSocket;
  Protocol: { ICMP: number; ICMPv6: number };
  AddressFamily: { IPv4: number; IPv6: number };
  SocketLevel: { IPPROTO_IP: number; IPPROTO_IPV6: number };
}
export interface RawSocket {
  on(event: "message", listener: (buffer: Buffer, source: string) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  on(event: "close", listener: () => void): void;
  send(buffer: Buffer, offset: number, length: number, address: string, after: (error: Error | null, bytes: number) => void): void;
  setOption(level: number, option: number, value: number | Buffer, length?: number): void;
  close(): void;
}

const SOL_RAW = 255;
const ICMP_FILTER = 1;
const IP_MTU_DISCOVER = 10;
const IP_PMTUDISC_PROBE = 3;
const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;
const IPV6_MTU_DISCOVER = 23;
const IPV6_PMTUDISC_PROBE = 3;
const IPV6_DONTFRAG = 62;
/** Big enough for any reply to the largest echo we send (a 9000-byte jumbo MTU, with headers). */
const RECEIVE_BUFFER_BYTES = 65_536;

let loaded: RawSocketModule | ProbeUnavailableError | undefined;

/** Loads raw-socket once; a ProbeUnavailableError (not thrown) when it is missing or did not build. */
export function loadRawSocket(): RawSocketModule | ProbeUnavailableError {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)("raw-socket") as RawSocketModule;
  } catch (error) {
    loaded = new ProbeUnavailableError(
      `probing is unavailable: the optional package raw-socket could not be loaded (${errorMessage(error)}); ` +
        "it is a native addon built at install time: install a C++ toolchain and python3 and run `npm rebuild raw-socket`. " +
        "Everything else in weft works without it",
      { cause: error },
    );
  }
  return loaded;
}

/** `raw` is raw-socket itself; tests pass a stand-in to provoke socket errors the kernel will not. */
/** Opens the ICMP socket of one family; the Pinger passes its own family. */
export type OpenIcmpSocket = (onPacket: (packet: Buffer, source: string) => void, family: IpFamily) => IcmpSocket;

export function openIcmpSocket(
  onPacket: (packet: Buffer, source: string) => void,
  family: IpFamily = 4,
  raw: RawSocketModule | ProbeUnavailableError = loadRawSocket(),
): IcmpSocket {
  if (raw instanceof ProbeUnavailableError) throw raw;
  let socket: RawSocket | undefined;
  let closed = false;
  const label = family === 4 ? "ICMP" : "ICMPv6";

  const open = (): RawSocket => {
    let created: RawSocket;
    try {
      created =
        family === 4
          ? raw.createSocket({ protocol: raw.Protocol.ICMP, bufferSize: RECEIVE_BUFFER_BYTES })
          : raw.createSocket({ protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6, bufferSize: RECEIVE_BUFFER_BYTES });
    } catch (error) {
      const hint = /not permitted/i.test(errorMessage(error)) ? ": probing needs CAP_NET_RAW (root, or the capability as weft.service grants it)" : "";
      throw new ProbeUnavailableError(`cannot open a raw ${label} socket: ${errorMessage(error)}${hint}`, { cause: error });
    }
    if (family === 4) {
      const filter = Buffer.alloc(4);
      filter.writeUInt32LE(icmpFilterMask());
      created.setOption(SOL_RAW, ICMP_FILTER, filter, filter.length);
      created.setOption(raw.SocketLevel.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
    } else {
      const filter = icmp6Filter();
      created.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, filter, filter.length);
      created.setOption(raw.SocketLevel.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE);
      created.setOption(raw.SocketLevel.IPPROTO_IPV6, IPV6_DONTFRAG, 1);
    }
    created.on("message", (buffer, source) => onPacket(buffer, source));
    // Forget a failed socket so the next send opens a new one. raw-socket closes it itself only
    // for errors of its poller, not for a failed recv(): close it here, or the old socket would
    // keep its descriptor and deliver every reply twice.
    created.on("error", () => {
      if (socket === created) socket = undefined;
      try {
        created.close();
      } catch {
        // Already closed by raw-socket.
      }
    });
    return created;
  };

  // Opened now, so a missing CAP_NET_RAW shows at once and replies are received before the first send.
  socket = open();
  return {
    send(packet, destination) {
      if (closed) return Promise.reject(new Error(`the ${label} socket is closed`));
      socket ??= open();
      const current = socket;
      return new Promise((resolve, reject) => {
        current.send(packet, 0, packet.length, destination, (error) => (error ? reject(error) : resolve()));
      });
    },
    close() {
      closed = true;
      socket?.close();
      socket = undefined;
    },
  };
}
