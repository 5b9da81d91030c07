import { describe, expect, it } from "vitest";
import { decodeIcmpV6, encodeEchoRequestV6, icmp6Filter } from "../../src/probe/icmpv6-packet.js";
import { parseIpv6 } from "../../src/net/ipv6.js";

/**
 * The ICMPv6 codec, table-driven from bytes: a raw ICMPv6 socket hands over the message without
 * the IPv6 header and the sender's address apart; errors quote our echo's IPv6 header.
 */
function address16(text: string): Buffer {
  const value = parseIpv6(text);
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) bytes[i] = Number((value >> BigInt((15 - i) * 8)) & 0xffn);
  return bytes;
}

/** The IPv6 header of an echo we sent to `to` (next header ICMPv6 unless told). */
function ipv6Header(from: string, to: string, payloadLength: number, nextHeader = 58): Buffer {
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(payloadLength, 4);
  header[6] = nextHeader;
  header[7] = 64;
  address16(from).copy(header, 8);
  address16(to).copy(header, 24);
  return header;
}

function icmpv6Error(type: number, code: number, to: string, identifier: number, sequence: number, word = 0, nextHeader = 58): Buffer {
  const header = Buffer.alloc(8);
  header[0] = type;
  header[1] = code;
  header.writeUInt32BE(word, 4);
  const echo = encodeEchoRequestV6({ identifier, sequence }, 1500);
  return Buffer.concat([header, ipv6Header("fd77::11", to, echo.length, nextHeader), echo.subarray(0, 64)]);
}

describe("encodeEchoRequestV6", () => {
  it("makes an echo request of exactly the IPv6 size asked for; the kernel fills the checksum", () => {
    const packet = encodeEchoRequestV6({ identifier: 0xbeef, sequence: 9 }, 1500);
    expect(packet.length).toBe(1460);
    expect([packet[0], packet[1], packet.readUInt16BE(2), packet.readUInt16BE(4), packet.readUInt16BE(6)]).toEqual([128, 0, 0, 0xbeef, 9]);
    expect(encodeEchoRequestV6({ identifier: 1, sequence: 1 }, 48).length).toBe(8);
    expect(() => encodeEchoRequestV6({ identifier: 1, sequence: 1 }, 47)).toThrow(/IPv6 echo size 47/);
  });
});

describe("decodeIcmpV6", () => {
  it("reads an echo reply, the sender in canonical form", () => {
    const reply = encodeEchoRequestV6({ identifier: 7, sequence: 300 }, 104);
    reply[0] = 129;
    expect(decodeIcmpV6(reply, "FD66:0:0:2:0:0:0:0")).toEqual({ kind: "echo-reply", from: "fd66:0:0:2::", identifier: 7, sequence: 300 });
  });

  it("reads Packet Too Big (32-bit MTU), unreachable and time exceeded quoting our echo", () => {
    expect(decodeIcmpV6(icmpv6Error(2, 0, "fd77::13", 7, 5, 1400), "fd77::fa")).toEqual({ kind: "frag-needed", from: "fd77::fa", to: "fd77::13", nextHopMtu: 1400, identifier: 7, sequence: 5 });
    expect(decodeIcmpV6(icmpv6Error(1, 3, "fd77::13", 7, 6), "fd77::fa")).toEqual({ kind: "unreachable", from: "fd77::fa", to: "fd77::13", code: 3, identifier: 7, sequence: 6 });
    expect(decodeIcmpV6(icmpv6Error(3, 0, "fd66:0:0:3::", 7, 8), "fd77::fa")).toEqual({ kind: "time-exceeded", from: "fd77::fa", to: "fd66:0:0:3::", identifier: 7, sequence: 8 });
  });

  it("ignores what is not ours or is malformed", () => {
    const request = encodeEchoRequestV6({ identifier: 7, sequence: 1 }, 104); // someone pinging us
    expect(decodeIcmpV6(request, "fd77::12")).toBeUndefined();
    expect(decodeIcmpV6(Buffer.from([129, 0, 0]), "fd77::12")).toBeUndefined(); // truncated
    expect(decodeIcmpV6(icmpv6Error(2, 0, "fd77::13", 7, 5, 1400), "not an address")).toBeUndefined();
    expect(decodeIcmpV6(icmpv6Error(2, 0, "fd77::13", 7, 5, 1400).subarray(0, 52), "fd77::fa")).toBeUndefined(); // quote cut short
    expect(decodeIcmpV6(icmpv6Error(1, 0, "fd77::13", 7, 5, 0, 17), "fd77::fa")).toBeUndefined(); // quotes a UDP packet
    const neighbour = Buffer.alloc(24);
    neighbour[0] = 135;
    expect(decodeIcmpV6(neighbour, "fe80::1")).toBeUndefined();
  });

  it("survives every truncation and every byte flipped of a valid error (no throw, ours or undefined)", () => {
    const valid = icmpv6Error(2, 0, "fd77::13", 7, 5, 1400);
    for (let length = 0; length <= valid.length; length++) expect(() => decodeIcmpV6(valid.subarray(0, length), "fd77::fa")).not.toThrow();
    for (let i = 0; i < valid.length; i++) {
      for (const value of [0x00, 0xff, (valid[i] as number) ^ 0x80]) {
        const mutated = Buffer.from(valid);
        mutated[i] = value as number;
        const decoded = decodeIcmpV6(mutated, "fd77::fa");
        if (decoded !== undefined) expect(["frag-needed", "unreachable", "time-exceeded", "echo-reply"]).toContain(decoded.kind);
      }
    }
  });
});

describe("icmp6Filter", () => {
  it("passes echo reply, unreachable, packet too big and time exceeded; blocks the rest (a set bit blocks)", () => {
    const filter = icmp6Filter();
    expect(filter.length).toBe(32);
    const passes = (type: number) => (filter.readUInt32LE((type >> 5) * 4) & (1 << (type & 31))) === 0;
    expect([129, 1, 2, 3].every(passes)).toBe(true);
    expect([128, 133, 134, 135, 136, 137, 4, 0].some(passes)).toBe(false);
  });
});
