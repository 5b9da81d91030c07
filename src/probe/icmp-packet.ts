/**
 * ICMPv4 as the probes need it: echo requests to send (the kernel adds the IP header), and what
 * a raw ICMP socket hands back (the IPv4 header included): echo replies, and the errors that
 * quote one of our echoes (frag-needed with the next-hop MTU, other unreachables, TTL expired).
 * Pure: parsed from bytes, tested table-driven; anything malformed or not ours is `undefined`.
 */

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_CODE_FRAG_NEEDED = 4;
/** IPv4 header (no options) + ICMP header: an echo of `size` bytes on the wire is `size` IP bytes. */
export const IPV4_HEADER_BYTES = 20;
export const ICMP_HEADER_BYTES = 8;
export const ECHO_OVERHEAD_BYTES = IPV4_HEADER_BYTES + ICMP_HEADER_BYTES;

export interface EchoId {
  identifier: number;
  sequence: number;
}

export type IcmpMessage =
  | ({ kind: "echo-reply"; from: string } & EchoId)
  /** An error about an echo we sent to `to`; `nextHopMtu` for frag-needed (0 when the router did not say). */
  | ({ kind: "frag-needed"; from: string; to: string; nextHopMtu: number } & EchoId)
  | ({ kind: "unreachable"; from: string; to: string; code: number } & EchoId)
  | ({ kind: "time-exceeded"; from: string; to: string } & EchoId);

/** The one's-complement sum of RFC 1071 over `bytes`. */
export function internetChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += ((bytes[i] as number) << 8) | (bytes[i + 1] as number);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An echo request whose IP packet is `ipBytes` long (so a DF echo of the interface MTU tests
 * exactly that size). The payload is a fixed pattern; its first 8 bytes carry the send time,
 * which a reply brings back and errors do not need.
 */
export function encodeEchoRequest(id: EchoId, ipBytes: number): Buffer {
  if (!Number.isInteger(ipBytes) || ipBytes < ECHO_OVERHEAD_BYTES || ipBytes > 65_535) {
    throw new RangeError(`echo size ${ipBytes}: must be a whole number of bytes between ${ECHO_OVERHEAD_BYTES} and 65535`);
  }
  const packet = echoMessage(ICMP_ECHO_REQUEST, id, ipBytes - IPV4_HEADER_BYTES);
  packet.writeUInt16BE(internetChecksum(packet), 2);
  return packet;
}

/** An echo message of `icmpBytes` (header included) with a zero checksum: ICMP and ICMPv6 share the layout. */
export function echoMessage(type: number, id: EchoId, icmpBytes: number): Buffer {
  const packet = Buffer.alloc(icmpBytes);
  packet[0] = type;
  packet.writeUInt16BE(id.identifier & 0xffff, 4);
  packet.writeUInt16BE(id.sequence & 0xffff, 6);
  for (let i = ICMP_HEADER_BYTES; i < packet.length; i++) packet[i] = i & 0xff;
  return packet;
}

function ipv4At(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** Length of the IPv4 header at `offset`, or undefined when it is not a plausible IPv4 header. */
function ipv4HeaderLength(bytes: Uint8Array, offset: number): number | undefined {
  if (bytes.length < offset + IPV4_HEADER_BYTES) return undefined;
  const first = bytes[offset] as number;
  if (first >> 4 !== 4) return undefined;
  const length = (first & 0x0f) * 4;
  return length < IPV4_HEADER_BYTES || bytes.length < offset + length ? undefined : length;
}

/** Parses what a raw IPPROTO_ICMP socket received: an IPv4 packet carrying ICMP. */
export function decodeIcmp(packet: Uint8Array): IcmpMessage | undefined {
  const headerLength = ipv4HeaderLength(packet, 0);
  if (headerLength === undefined || packet[9] !== 1) return undefined;
  const icmp = headerLength;
  if (packet.length < icmp + ICMP_HEADER_BYTES) return undefined;
  const view = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  const type = packet[icmp] as number;
  const code = packet[icmp + 1] as number;
  const from = ipv4At(packet, 12);
  if (type === ICMP_ECHO_REPLY) {
    return { kind: "echo-reply", from, identifier: view.readUInt16BE(icmp + 4), sequence: view.readUInt16BE(icmp + 6) };
  }
  if (type !== ICMP_DEST_UNREACHABLE && type !== ICMP_TIME_EXCEEDED) return undefined;
  // The error quotes the offending IP header and at least 8 bytes of its payload: our echo header.
  const quoted = icmp + ICMP_HEADER_BYTES;
  const quotedLength = ipv4HeaderLength(packet, quoted);
  if (quotedLength === undefined || packet[quoted + 9] !== 1) return undefined;
  const echo = quoted + quotedLength;
  if (packet.length < echo + ICMP_HEADER_BYTES || packet[echo] !== ICMP_ECHO_REQUEST) return undefined;
  const to = ipv4At(packet, quoted + 16);
  const id = { identifier: view.readUInt16BE(echo + 4), sequence: view.readUInt16BE(echo + 6) };
  if (type === ICMP_TIME_EXCEEDED) return { kind: "time-exceeded", from, to, ...id };
  if (code === ICMP_CODE_FRAG_NEEDED) return { kind: "frag-needed", from, to, nextHopMtu: view.readUInt16BE(icmp + 6), ...id };
  return { kind: "unreachable", from, to, code, ...id };
}

/**
 * The ICMP_FILTER mask (SOL_RAW): a set bit drops that type in the kernel, before the socket
 * wakes up. Everything but echo reply, unreachable and time exceeded is dropped, so the host's
 * own ICMP traffic (echo requests it answers, redirects, …) never reaches the probe.
 */
export function icmpFilterMask(): number {
  const wanted = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_DEST_UNREACHABLE) | (1 << ICMP_TIME_EXCEEDED);
  return ~wanted >>> 0;
}
