/**
 * ICMPv6 as the probes need it, the IPv6 twin of icmp-packet.ts. A raw IPPROTO_ICMPV6 socket
 * differs from the IPv4 one in two ways that shape this module: it hands over the ICMPv6 message
 * without the IPv6 header (the sender's address comes from recvfrom, so `decodeIcmpV6` takes it),
 * and the kernel computes the checksum of what it sends (RFC 3542 §3.1: always, for ICMPv6), so
 * an echo request goes out with a zero checksum field. Errors quote the offending IPv6 packet:
 * header (40 bytes) then our echo request; Packet Too Big carries the next-hop MTU in 32 bits.
 * Pure: parsed from bytes, tested table-driven; anything malformed or not ours is `undefined`.
 */
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import { ICMP_HEADER_BYTES, echoMessage, type IcmpMessage } from "./icmp-packet.js";

export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const IPV6_HEADER_BYTES = 40;
/** IPv6 header + ICMPv6 echo header: an echo of `size` bytes on the wire is `size` IP bytes. */
export const ECHO_OVERHEAD_BYTES_V6 = IPV6_HEADER_BYTES + ICMP_HEADER_BYTES;
const NEXT_HEADER_ICMPV6 = 58;

/** An echo request whose IPv6 packet is `ipBytes` long; the checksum is left to the kernel. */
export function encodeEchoRequestV6(id: { identifier: number; sequence: number }, ipBytes: number): Buffer {
  if (!Number.isInteger(ipBytes) || ipBytes < ECHO_OVERHEAD_BYTES_V6 || ipBytes > 65_535 + IPV6_HEADER_BYTES) {
    throw new RangeError(`IPv6 echo size ${ipBytes}: must be a whole number of bytes between ${ECHO_OVERHEAD_BYTES_V6} and ${65_535 + IPV6_HEADER_BYTES}`);
  }
  return echoMessage(ICMPV6_ECHO_REQUEST, id, ipBytes - IPV6_HEADER_BYTES);
}

function ipv6At(bytes: Uint8Array, offset: number): string {
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(bytes[offset + i] as number);
  return formatIpv6(value);
}

/**
 * Parses an ICMPv6 message a raw socket received from `source` (recvfrom's address, any text
 * form: it is put in canonical form, as every address here).
 */
export function decodeIcmpV6(message: Uint8Array, source: string): IcmpMessage | undefined {
  const sourceNumber = tryParseIpv6(source);
  if (sourceNumber === undefined || message.length < ICMP_HEADER_BYTES) return undefined;
  const from = formatIpv6(sourceNumber);
  const view = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const type = message[0] as number;
  const code = message[1] as number;
  if (type === ICMPV6_ECHO_REPLY) return { kind: "echo-reply", from, identifier: view.readUInt16BE(4), sequence: view.readUInt16BE(6) };
  if (type !== ICMPV6_DEST_UNREACHABLE && type !== ICMPV6_PACKET_TOO_BIG && type !== ICMPV6_TIME_EXCEEDED) return undefined;
  // The quoted packet: an IPv6 header whose next header is ICMPv6 (our echoes carry no extension headers), then our echo.
  const quoted = ICMP_HEADER_BYTES;
  const echo = quoted + IPV6_HEADER_BYTES;
  if (message.length < echo + ICMP_HEADER_BYTES || (message[quoted] as number) >> 4 !== 6 || message[quoted + 6] !== NEXT_HEADER_ICMPV6) return undefined;
  if (message[echo] !== ICMPV6_ECHO_REQUEST) return undefined;
  const to = ipv6At(message, quoted + 24);
  const id = { identifier: view.readUInt16BE(echo + 4), sequence: view.readUInt16BE(echo + 6) };
  if (type === ICMPV6_TIME_EXCEEDED) return { kind: "time-exceeded", from, to, ...id };
  // Packet Too Big is IPv6's frag-needed: the MTU of the next hop, 32 bits.
  if (type === ICMPV6_PACKET_TOO_BIG) return { kind: "frag-needed", from, to, nextHopMtu: view.readUInt32BE(4), ...id };
  return { kind: "unreachable", from, to, code, ...id };
}

/**
 * struct icmp6_filter (ICMP6_FILTER at level IPPROTO_ICMPV6): 256 bits, a set bit blocks that
 * type in the kernel (Linux's ICMP6_FILTER_SETBLOCK). Everything but echo reply, destination
 * unreachable, packet too big and time exceeded is blocked, so neighbour discovery, router
 * advertisements and the echo requests the host answers never wake the probe.
 */
export function icmp6Filter(): Buffer {
  const filter = Buffer.alloc(32, 0xff);
  for (const type of [ICMPV6_ECHO_REPLY, ICMPV6_DEST_UNREACHABLE, ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED]) {
    const word = type >> 5;
    filter.writeUInt32LE((filter.readUInt32LE(word * 4) & ~(1 << (type & 31))) >>> 0, word * 4);
  }
  return filter;
}
