/**
 * Hostile and broken datagrams thrown at the engines' sockets from the other namespace
 * (topology: see two-hosts.ts). A runs two engines: udp on wt0 (port 8285, the ping path to
 * B's udp engine) and userspace vxlan on wt1 (port 8472, fed only by this test). B's ul0 also
 * holds 192.168.90.3, a sender that is no peer.
 *
 * The vxlan engine also has an IPv6 underlay socket (fd70:90::1, peer B at fd70:90::2, its IPv6
 * subnet fd70:0:0:2::/64; fd70:90::3 on B is no peer).
 *
 * Every case must be dropped and counted under its reason, and the engines must still forward.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { sleep } from "../../src/async/sleep.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { parseIpv6 } from "../../src/net/ipv6.js";
import { ipBatch } from "../../src/lab/netns.js";
import {
  NETWORK, STRANGER, SUBNET6_B, SUBNET_A, SUBNET_B, TUN6_A, TUN_A, TUN_B, UNDERLAY6_A, UNDERLAY6_B, UNDERLAY_A, UNDERLAY_B,
  addIpv6Underlay, createTwoHosts, ping, type TwoHosts,
} from "./two-hosts.js";

const STRANGER6 = "fd70:90::3";

const MAC_A = "0a:11:22:33:44:01";
const MAC_B = "0a:11:22:33:44:02";

interface Datagram {
  from: string;
  port: number;
  hex: string;
}

/**
 * Sends datagrams from namespace B, each from its own source address, to A's underlay address
 * of that family (IPv6 sources go to A's IPv6 one).
 */
async function sendFromB(hosts: TwoHosts, datagrams: readonly Datagram[]): Promise<void> {
  const script = `
    const dgram = require("node:dgram");
    const items = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    const sockets = new Map();
    (async () => {
      for (const item of items) {
        const v6 = item.from.includes(":");
        let socket = sockets.get(item.from);
        if (!socket) {
          socket = dgram.createSocket(v6 ? "udp6" : "udp4");
          await new Promise((resolve) => socket.bind({ address: item.from }, resolve));
          sockets.set(item.from, socket);
        }
        const to = v6 ? "${UNDERLAY6_A}" : "${UNDERLAY_A}";
        await new Promise((resolve, reject) => socket.send(Buffer.from(item.hex, "hex"), item.port, to, (e) => e ? reject(e) : resolve()));
      }
      for (const socket of sockets.values()) socket.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await execInNamespace(hosts.b, process.execPath, ["-e", script], { input: JSON.stringify(datagrams) });
}

function checksum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += bytes.readUInt16BE(i);
  if (bytes.length % 2) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A well-formed ICMP echo request, checksums included. */
function icmpEcho(src: string, dst: string, payloadLength = 32): Buffer {
  const packet = Buffer.alloc(28 + payloadLength);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64;
  packet[9] = 1;
  src.split(".").forEach((part, i) => (packet[12 + i] = Number(part)));
  dst.split(".").forEach((part, i) => (packet[16 + i] = Number(part)));
  packet.writeUInt16BE(checksum(packet.subarray(0, 20)), 10);
  packet[20] = 8;
  packet.writeUInt16BE(0x1234, 24);
  packet.writeUInt16BE(checksum(packet.subarray(20)), 22);
  return packet;
}

/** A well-formed ICMPv6 echo request, its checksum over the IPv6 pseudo-header. */
function icmp6Echo(src: string, dst: string, payloadLength = 32): Buffer {
  const packet = Buffer.alloc(48 + payloadLength);
  packet[0] = 0x60;
  packet.writeUInt16BE(8 + payloadLength, 4);
  packet[6] = 58;
  packet[7] = 64;
  const address = (text: string) => Buffer.from(parseIpv6(text).toString(16).padStart(32, "0"), "hex");
  address(src).copy(packet, 8);
  address(dst).copy(packet, 24);
  packet[40] = 128;
  packet.writeUInt16BE(0x1234, 44);
  const pseudo = Buffer.concat([packet.subarray(8, 40), Buffer.from([0, 0, 0, 8 + payloadLength, 0, 0, 0, 58])]);
  packet.writeUInt16BE(checksum(Buffer.concat([pseudo, packet.subarray(40)])), 42);
  return packet;
}

function vxlanFrame(inner: Buffer, options: { vni?: number; flags?: number; dstMac?: string; etherType?: number } = {}): Buffer {
  const header = Buffer.alloc(22);
  header[0] = options.flags ?? 0x08;
  header.writeUIntBE(options.vni ?? 1, 4, 3);
  Buffer.from((options.dstMac ?? MAC_A).split(":").map((h) => parseInt(h, 16))).copy(header, 8);
  Buffer.from(MAC_B.split(":").map((h) => parseInt(h, 16))).copy(header, 14);
  header.writeUInt16BE(options.etherType ?? 0x0800, 20);
  return Buffer.concat([header, inner]);
}

const hex = (b: Buffer) => b.toString("hex");

/** The engine threads run on their own: wait until they have seen `count` more datagrams. */
async function settle(engines: readonly Engine[], before: number, count: number): Promise<void> {
  const seen = () => engines.reduce((sum, engine) => sum + engine.counters().outside.batchDatagrams, 0);
  const deadline = Date.now() + 3000;
  while (seen() < before + count && Date.now() < deadline) await sleep(20);
  await sleep(50); // let the last batch finish its counting
}

/**
 * Waits until the engine has received nothing for 100 ms (stragglers of the previous test's
 * pings), so a `before` snapshot taken next counts only what the test itself sends.
 */
async function quiet(engine: Engine): Promise<void> {
  const deadline = Date.now() + 3000;
  let last = engine.counters().outside.batchDatagrams;
  while (Date.now() < deadline) {
    await sleep(100);
    const now = engine.counters().outside.batchDatagrams;
    if (now === last) return;
    last = now;
  }
}

let hosts: TwoHosts;
let udpA: Engine;
let vxlanA: Engine;
let udpB: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  udpA = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a });
  await addIpv6Underlay(hosts);
  await ipBatch(hosts.b, [`addr add ${STRANGER6}/64 dev ul0 nodad`]);
  vxlanA = openEngine({
    mode: "vxlan", tunName: "wt1", mtu: 1450, bindAddress: UNDERLAY_A, bindAddressV6: UNDERLAY6_A, netns: hosts.a, vtepMac: MAC_A,
  });
  udpB = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_B, netns: hosts.b });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
  udpA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
  vxlanA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B, ipv6: { subnet: SUBNET6_B, publicIPv6: UNDERLAY6_B, vtepMac: MAC_B } });
  udpB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A });
});

afterAll(async () => {
  udpA?.close();
  vxlanA?.close();
  udpB?.close();
  await hosts?.destroy();
});

describe("engine under hostile input", () => {
  it("udp mode: drops each malformed or spoofed datagram under its reason and keeps forwarding", async () => {
    const good = icmpEcho("10.70.2.5", TUN_A);
    const ipv6 = Buffer.alloc(48);
    ipv6[0] = 0x60;
    const longerThanSent = Buffer.from(good);
    longerThanSent.writeUInt16BE(1000, 2);
    const shortHeader = Buffer.from(good);
    shortHeader[0] = 0x43;
    const before = udpA.counters().outside;
    const sent = [
      { from: UNDERLAY_B, port: 8285, hex: hex(good) },
      { from: STRANGER, port: 8285, hex: hex(good) },
      { from: UNDERLAY_B, port: 8285, hex: hex(icmpEcho("10.70.3.5", TUN_A)) },
      { from: UNDERLAY_B, port: 8285, hex: hex(icmpEcho(TUN_A, TUN_A)) },
      { from: UNDERLAY_B, port: 8285, hex: "4500000a" },
      { from: UNDERLAY_B, port: 8285, hex: "" },
      { from: UNDERLAY_B, port: 8285, hex: hex(longerThanSent) },
      { from: UNDERLAY_B, port: 8285, hex: hex(ipv6) },
      { from: UNDERLAY_B, port: 8285, hex: hex(shortHeader) },
    ];
    await sendFromB(hosts, sent);
    await settle([udpA], before.batchDatagrams, sent.length);
    const after = udpA.counters().outside;
    const delta = (reason: string) => (after.drops[reason] ?? 0) - (before.drops[reason] ?? 0);
    expect(after.packets - before.packets).toBe(1);
    expect(delta("unknown_sender")).toBe(1);
    expect(delta("source_not_in_subnet")).toBe(2);
    expect(delta("truncated")).toBe(3);
    expect(delta("not_ipv4")).toBe(1);
    expect(delta("malformed")).toBe(1);
    expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBe(2);
  });

  it("vxlan mode: checks flags, VNI, destination MAC and ethertype", async () => {
    const inner = icmpEcho("10.70.2.5", TUN_A);
    const before = vxlanA.counters().outside;
    const sent = [
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner)) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, { vni: 2 })) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, { flags: 0x0c })) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, { flags: 0x00 })) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, { dstMac: "ff:ff:ff:ff:ff:ff" })) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, { etherType: 0x0806 })) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner).subarray(0, 30)) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(icmpEcho("10.70.9.9", TUN_A))) },
      { from: STRANGER, port: 8472, hex: hex(vxlanFrame(inner)) },
    ];
    await sendFromB(hosts, sent);
    await settle([vxlanA], before.batchDatagrams, sent.length);
    const after = vxlanA.counters().outside;
    const delta = (reason: string) => (after.drops[reason] ?? 0) - (before.drops[reason] ?? 0);
    expect(after.packets - before.packets).toBe(1);
    expect(delta("wrong_vni")).toBe(1);
    expect(delta("bad_vxlan_flags")).toBe(2);
    expect(delta("wrong_dst_mac")).toBe(1);
    expect(delta("not_ipv4")).toBe(1);
    expect(delta("truncated")).toBe(1);
    expect(delta("source_not_in_subnet")).toBe(1);
    expect(delta("unknown_sender")).toBe(1);
  });

  it("vxlan over IPv6: checks the sender's PublicIPv6, the inner IPv6 header and source, and the family", async () => {
    const inner = icmp6Echo("fd70:0:0:2::5", TUN6_A);
    const v6 = { etherType: 0x86dd };
    const longer = Buffer.from(inner);
    longer.writeUInt16BE(1000, 4);
    const notSix = Buffer.from(inner);
    notSix[0] = 0x45;
    const before = vxlanA.counters().outside;
    const sent = [
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(inner, v6)) },
      { from: STRANGER6, port: 8472, hex: hex(vxlanFrame(inner, v6)) },
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(icmp6Echo("fd70:0:0:9::9", TUN6_A), v6)) },
      // An IPv4 frame on the IPv6 socket, an IPv6 frame on the IPv4 socket: no peer sends those.
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(icmpEcho("10.70.2.5", TUN_A))) },
      { from: UNDERLAY_B, port: 8472, hex: hex(vxlanFrame(inner, v6)) },
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(longer, v6)) },
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(inner, v6).subarray(0, 22 + 30)) },
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(notSix, v6)) },
      { from: UNDERLAY6_B, port: 8472, hex: hex(vxlanFrame(inner, { ...v6, vni: 9 })) },
    ];
    await sendFromB(hosts, sent);
    await settle([vxlanA], before.batchDatagrams, sent.length);
    const after = vxlanA.counters().outside;
    const delta = (reason: string) => (after.drops[reason] ?? 0) - (before.drops[reason] ?? 0);
    expect(after.packets - before.packets).toBe(1);
    expect((after.detail.ipv6_packets ?? 0) - (before.detail.ipv6_packets ?? 0)).toBe(1);
    expect(delta("unknown_sender")).toBe(1);
    expect(delta("source_not_in_subnet")).toBe(3);
    expect(delta("truncated")).toBe(2);
    expect(delta("malformed")).toBe(1);
    expect(delta("wrong_vni")).toBe(1);
  });

  it("vxlan over IPv6: survives random and mutated IPv6 frames, then still accepts a good one", async () => {
    const seed = vxlanFrame(icmp6Echo("fd70:0:0:2::5", TUN6_A, 1000), { etherType: 0x86dd });
    const datagrams: Datagram[] = [];
    for (let i = 0; i < 300; i++) {
      let bytes = i % 3 === 0 ? randomBytes(Math.floor(Math.random() * 1600)) : Buffer.from(seed);
      if (i % 3 !== 0) {
        for (let flips = 0; flips < 1 + (i % 6); flips++) bytes[22 + Math.floor(Math.random() * 60)] = Math.floor(Math.random() * 256);
        if (i % 5 === 0) bytes = bytes.subarray(0, Math.floor(Math.random() * bytes.length));
      }
      datagrams.push({ from: UNDERLAY6_B, port: 8472, hex: hex(bytes) });
    }
    datagrams.push({ from: UNDERLAY6_B, port: 8472, hex: hex(seed) });
    const before = vxlanA.counters().outside;
    await sendFromB(hosts, datagrams);
    await settle([vxlanA], before.batchDatagrams, datagrams.length);
    const after = vxlanA.counters().outside;
    expect(after.batchDatagrams - before.batchDatagrams).toBe(datagrams.length);
    expect((after.detail.ipv6_packets ?? 0) - (before.detail.ipv6_packets ?? 0)).toBeGreaterThanOrEqual(1);
  });

  it("survives random and mutated datagrams of every size, then still forwards", async () => {
    const seeds = [icmpEcho("10.70.2.5", TUN_A, 1400), vxlanFrame(icmpEcho("10.70.2.5", TUN_A, 1000))];
    const datagrams: Datagram[] = [];
    for (let i = 0; i < 600; i++) {
      const port = i % 2 === 0 ? 8285 : 8472;
      let bytes: Buffer;
      if (i % 3 === 0) {
        bytes = randomBytes(Math.floor(Math.random() * 1600));
      } else {
        bytes = Buffer.from(seeds[i % 2] as Buffer);
        for (let flips = 0; flips < 1 + (i % 6); flips++) {
          bytes[Math.floor(Math.random() * bytes.length)] = Math.floor(Math.random() * 256);
        }
        if (i % 5 === 0) bytes = bytes.subarray(0, Math.floor(Math.random() * bytes.length));
      }
      datagrams.push({ from: UNDERLAY_B, port, hex: hex(bytes) });
    }
    // The largest UDP payload there is (65507 bytes): never truncated, never a crash.
    const big = Buffer.alloc(65_507);
    icmpEcho("10.70.2.5", TUN_A).copy(big);
    datagrams.push({ from: UNDERLAY_B, port: 8285, hex: hex(big) });
    datagrams.push({ from: UNDERLAY_B, port: 8472, hex: hex(big) });
    const before = udpA.counters().outside.batchDatagrams + vxlanA.counters().outside.batchDatagrams;
    await sendFromB(hosts, datagrams);
    await settle([udpA, vxlanA], before, datagrams.length);
    const after = udpA.counters().outside.batchDatagrams + vxlanA.counters().outside.batchDatagrams;
    expect(after - before).toBe(datagrams.length);
    expect(udpA.counters().outside.drops.oversized).toBe(0);
    expect((await ping(hosts.a, TUN_B, { count: 3 })).received).toBe(3);
    expect((await ping(hosts.b, TUN_A, { count: 3 })).received).toBe(3);
  });

  it("a peer whose subnet changes is checked against the new subnet at once", async () => {
    const moved = Ipv4Subnet.parse("10.70.7.0/24");
    udpA.removePeer(SUBNET_B);
    udpA.setPeer({ subnet: moved, publicIP: UNDERLAY_B });
    await quiet(udpA);
    const before = udpA.counters().outside;
    await sendFromB(hosts, [
      { from: UNDERLAY_B, port: 8285, hex: hex(icmpEcho("10.70.2.5", TUN_A)) },
      { from: UNDERLAY_B, port: 8285, hex: hex(icmpEcho("10.70.7.5", TUN_A)) },
    ]);
    await settle([udpA], before.batchDatagrams, 2);
    const after = udpA.counters().outside;
    expect((after.drops.source_not_in_subnet ?? 0) - (before.drops.source_not_in_subnet ?? 0)).toBe(1);
    expect(after.packets - before.packets).toBe(1);
    udpA.removePeer(moved);
    udpA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
  });
});
