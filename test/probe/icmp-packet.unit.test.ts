import { describe, expect, it } from "vitest";
import { decodeIcmp, encodeEchoRequest, icmpFilterMask, internetChecksum } from "../../src/probe/icmp-packet.js";

/** An IPv4 header (no options) of `total` bytes, protocol ICMP, from → to. */
function ipv4Header(from: string, to: string, total: number, flagsFragment = 0x4000): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(total, 2);
  header.writeUInt16BE(flagsFragment, 6);
  header[8] = 64;
  header[9] = 1;
  Buffer.from(from.split(".").map(Number)).copy(header, 12);
  Buffer.from(to.split(".").map(Number)).copy(header, 16);
  return header;
}

function echoReply(from: string, to: string, identifier: number, sequence: number): Buffer {
  const icmp = encodeEchoRequest({ identifier, sequence }, 84).subarray(0);
  icmp[0] = 0;
  return Buffer.concat([ipv4Header(from, to, 20 + icmp.length), icmp]);
}

/** An ICMP error from `router` quoting our echo to `to` (its IP header and 8 bytes). */
function icmpError(type: number, code: number, router: string, to: string, identifier: number, sequence: number, nextHopMtu = 0): Buffer {
  const quoted = Buffer.concat([ipv4Header("192.168.77.11", to, 1500), encodeEchoRequest({ identifier, sequence }, 1500).subarray(0, 8)]);
  const header = Buffer.alloc(8);
  header[0] = type;
  header[1] = code;
  header.writeUInt16BE(nextHopMtu, 6);
  return Buffer.concat([ipv4Header(router, "192.168.77.11", 20 + 8 + quoted.length), header, quoted]);
}

describe("encodeEchoRequest", () => {
  it("makes an echo of exactly the IP size asked for, with a valid checksum", () => {
    const packet = encodeEchoRequest({ identifier: 0x1234, sequence: 7 }, 1500);
    expect(packet.length).toBe(1480);
    expect([packet[0], packet.readUInt16BE(4), packet.readUInt16BE(6)]).toEqual([8, 0x1234, 7]);
    expect(internetChecksum(packet)).toBe(0);
  });

  it.each([27, 65_536, 100.5])("refuses size %s naming it", (size) => {
    expect(() => encodeEchoRequest({ identifier: 1, sequence: 1 }, size)).toThrow(`echo size ${size}`);
  });
});

describe("decodeIcmp", () => {
  it.each([
    ["an echo reply", echoReply("10.66.2.0", "10.66.1.0", 99, 3), { kind: "echo-reply", from: "10.66.2.0", identifier: 99, sequence: 3 }],
    [
      "a frag-needed with the next-hop MTU",
      icmpError(3, 4, "192.168.77.250", "192.168.77.14", 99, 4, 1400),
      { kind: "frag-needed", from: "192.168.77.250", to: "192.168.77.14", nextHopMtu: 1400, identifier: 99, sequence: 4 },
    ],
    [
      "a host unreachable",
      icmpError(3, 1, "192.168.77.11", "192.168.77.15", 99, 5),
      { kind: "unreachable", from: "192.168.77.11", to: "192.168.77.15", code: 1, identifier: 99, sequence: 5 },
    ],
    ["a TTL expired", icmpError(11, 0, "192.168.77.1", "192.168.77.15", 1, 2), { kind: "time-exceeded", from: "192.168.77.1", to: "192.168.77.15", identifier: 1, sequence: 2 }],
  ])("reads %s", (_what, packet, expected) => {
    expect(decodeIcmp(packet)).toEqual(expected);
  });

  it.each([
    ["nothing", Buffer.alloc(0)],
    ["an IPv6 packet", Buffer.concat([Buffer.from([0x60]), Buffer.alloc(40)])],
    ["a header length past the end", Buffer.concat([Buffer.from([0x4f]), Buffer.alloc(30)])],
    ["an echo request (not ours to answer)", Buffer.concat([ipv4Header("1.2.3.4", "5.6.7.8", 104), encodeEchoRequest({ identifier: 1, sequence: 1 }, 84)])],
    ["an error quoting a truncated packet", icmpError(3, 4, "192.168.77.250", "192.168.77.14", 1, 1, 1400).subarray(0, 50)],
    ["a redirect", (() => { const p = icmpError(3, 4, "1.1.1.1", "2.2.2.2", 1, 1); p[20] = 5; return p; })()],
  ])("ignores %s", (_what, packet) => {
    expect(decodeIcmp(packet)).toBeUndefined();
  });
});

describe("icmpFilterMask", () => {
  it("lets only echo reply, unreachable and time exceeded through (a set bit drops the type)", () => {
    const mask = icmpFilterMask();
    const passing = Array.from({ length: 32 }, (_, type) => type).filter((type) => ((mask >>> type) & 1) === 0);
    expect(passing).toEqual([0, 3, 11]);
  });
});
