/**
 * Userspace vxlan over IPv6 against a kernel peer configured as flanneld configures a dual-stack
 * host: flannel.1 (IPv4 underlay) and flannel-v6.1 (IPv6 underlay), each with nolearning,
 * dstport 8472, a permanent neighbour + FDB entry and an onlink route per peer (flannel-spec §6).
 *
 *     <p>a  (weft engine, in-process)                 <p>b  (kernel, as flanneld)
 *   +--------------------------------+            +-----------------------------------+
 *   | tun wt0  10.70.1.0/32          |            | flannel.1     10.70.2.0/32        |
 *   |          fd70:0:0:1::/128      |            | flannel-v6.1  fd70:0:0:2::/128    |
 *   |  routes 10.70.0.0/16, fd70::/48|            |  routes to a's subnets, onlink    |
 *   | ul0 192.168.90.1/24            |            | ul0 192.168.90.2/24               |
 *   |     fd70:90::1/64 -------------+-- veth ----+---- fd70:90::2/64                   |
 *   +--------------------------------+            +-----------------------------------+
 *
 * TUN MTU 1450 (1500 - 50, both families, as FLANNEL_MTU); IPv6 path MTU 1430 (1500 - 70:
 * the outer IPv6 header is 20 bytes longer), enforced by the engine with packet too big.
 */
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineCounters } from "../../src/engine/counters.js";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace, ipBatch } from "../../src/lab/netns.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { verifiedTransfer } from "../support/tcp-transfer.js";
import {
  NETWORK, NETWORK6, SUBNET6_A, SUBNET6_B, SUBNET_A, SUBNET_B, TUN6_A, TUN6_B, TUN_A, TUN_B, UNDERLAY6_A, UNDERLAY6_B,
  UNDERLAY_A, UNDERLAY_B, addIpv6Underlay, createTwoHosts, iperfAToB, ping, type TwoHosts,
} from "./two-hosts.js";

/** An address on b outside b's IPv6 subnet: packets from it are spoofed as far as a is concerned. */
const SPOOFED6 = "fd70:0:0:9::1";
const MAC_A = "0a:11:22:33:66:01";
const MAC_B = "0a:11:22:33:66:02";
/** flanneld gives flannel-v6.<VNI> its own MAC (BackendV6Data.VtepMAC). */
const MAC_B6 = "0a:11:22:33:66:06";
const VNI = 1;
const MTU = 1450;
const MTU6 = 1430;

let hosts: TwoHosts;
let engine: Engine;

const delta = (after: EngineCounters, before: EngineCounters) => ({
  inside: (key: string) => (after.inside.detail[key] ?? 0) - (before.inside.detail[key] ?? 0),
  insideDrop: (key: string) => (after.inside.drops[key] ?? 0) - (before.inside.drops[key] ?? 0),
  outside: (key: string) => (after.outside.detail[key] ?? 0) - (before.outside.detail[key] ?? 0),
  outsideDrop: (key: string) => (after.outside.drops[key] ?? 0) - (before.outside.drops[key] ?? 0),
});

beforeAll(async () => {
  hosts = await createTwoHosts();
  await addIpv6Underlay(hosts);
  engine = openEngine({
    mode: "vxlan", tunName: "wt0", mtu: MTU, mtuV6: MTU6, bindAddress: UNDERLAY_A, bindAddressV6: UNDERLAY6_A,
    netns: hosts.a, icmpSource: TUN_A, icmpSourceV6: TUN6_A, vni: VNI, vtepMac: MAC_A,
  });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a, { ownSubnet: SUBNET6_A, network: NETWORK6 });
  engine.setPeer({
    subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B,
    ipv6: { subnet: SUBNET6_B, publicIPv6: UNDERLAY6_B, vtepMac: MAC_B6 },
  });
  // Host b: the two kernel devices exactly as flanneld programs a dual-stack vxlan peer.
  await ipBatch(hosts.b, [
    `link add flannel.1 address ${MAC_B} type vxlan id ${VNI} local ${UNDERLAY_B} dev ul0 dstport 8472 nolearning`,
    `link set flannel.1 mtu ${MTU} up`,
    `addr add ${TUN_B}/32 dev flannel.1`,
    `neigh replace ${TUN_A} lladdr ${MAC_A} dev flannel.1 nud permanent`,
    `route replace ${SUBNET_A} via ${TUN_A} dev flannel.1 onlink`,
    `link add flannel-v6.1 address ${MAC_B6} type vxlan id ${VNI} local ${UNDERLAY6_B} dev ul0 dstport 8472 nolearning`,
    // The kernel's own limit for a vxlan device over IPv6 (and its default): E - 70.
    `link set flannel-v6.1 mtu ${MTU6} up`,
    `addr add ${TUN6_B}/128 dev flannel-v6.1 nodad`,
    `addr add ${SPOOFED6}/128 dev flannel-v6.1 nodad`,
    `neigh replace ${TUN6_A} lladdr ${MAC_A} dev flannel-v6.1 nud permanent`,
    `route replace ${SUBNET6_A} via ${TUN6_A} dev flannel-v6.1 onlink`,
  ]);
  await execInNamespace(hosts.b, "bridge", ["fdb", "append", MAC_A, "dev", "flannel.1", "dst", UNDERLAY_A]);
  await execInNamespace(hosts.b, "bridge", ["fdb", "append", MAC_A, "dev", "flannel-v6.1", "dst", UNDERLAY6_A]);
});

afterAll(async () => {
  engine?.close();
  await hosts?.destroy();
});

describe("userspace vxlan over IPv6 against a kernel flannel-v6.1 peer", () => {
  it("opens an IPv6 underlay socket next to the IPv4 one", () => {
    expect(engine.features.ipv6Underlay).toBe(true);
  });

  it("pings over IPv6 both ways; the engine decrements the hop limit once", async () => {
    const before = engine.counters();
    const fromEngine = await ping(hosts.a, TUN6_B);
    expect(fromEngine.received, fromEngine.output).toBe(3);
    // b's reply crosses the engine on a's outside only: written into the TUN as it came (64).
    expect(fromEngine.ttl).toBe(64);
    const fromKernel = await ping(hosts.b, TUN6_A);
    expect(fromKernel.received, fromKernel.output).toBe(3);
    // a's reply leaves through the engine's inside: one router hop.
    expect(fromKernel.ttl).toBe(63);
    const d = delta(engine.counters(), before);
    expect(d.inside("ipv6_packets")).toBeGreaterThanOrEqual(6);
    expect(d.outside("ipv6_packets")).toBeGreaterThanOrEqual(5);
  });

  it("carries a don't-fragment ping6 at the IPv6 path MTU and answers a bigger one with packet too big", async () => {
    const headers = 40 + 8;
    expect((await ping(hosts.a, TUN6_B, { count: 2, size: MTU6 - headers, dontFragment: true })).received).toBe(2);
    expect((await ping(hosts.b, TUN6_A, { count: 2, size: MTU6 - headers, dontFragment: true })).received).toBe(2);
    const before = engine.counters();
    const tooBig = await ping(hosts.a, TUN6_B, { count: 2, size: MTU6 - headers + 1, dontFragment: true });
    expect(tooBig.received).toBe(0);
    // The first request gets the engine's ICMPv6 packet too big; ping (and the kernel's PMTU
    // cache, which only a valid checksum gets into) then knows the path MTU.
    expect(tooBig.output).toMatch(new RegExp(`mtu[=: ]+${MTU6}`, "i"));
    expect(delta(engine.counters(), before).insideDrop("too_big")).toBeGreaterThanOrEqual(1);
  });

  it("moves 16 MB over TCPv6 intact both ways; TCPv6 super-packets from the TUN are split (TSO)", async () => {
    const before = engine.counters();
    const out = await verifiedTransfer(hosts.a, hosts.b, TUN6_B, { port: 5206 });
    expect(out.received).toBe(out.sent);
    const back = await verifiedTransfer(hosts.b, hosts.a, TUN6_A, { port: 5207 });
    expect(back.received).toBe(back.sent);
    const d = delta(engine.counters(), before);
    expect(d.inside("super_packets")).toBeGreaterThan(0);
    expect(d.inside("ipv6_packets")).toBeGreaterThan(1000);
    // The kernel peer's datagrams may each carry a whole TCP super-packet: fewer, bigger packets.
    expect(d.outside("ipv6_packets")).toBeGreaterThan(100);
    // (The kernel peer hands whole TCP super-packets to the veth as single datagrams, so this
    // direction needs no GRO; the engine-to-engine test below exercises GRO coalescing.)
    expect(d.outsideDrop("source_not_in_subnet")).toBe(0);
  });

  it("drops and counts an inner IPv6 source outside the sending peer's IPv6 subnet", async () => {
    const before = engine.counters();
    const spoofed = await ping(hosts.b, TUN6_A, { count: 2, source: SPOOFED6 });
    expect(spoofed.received).toBe(0);
    await expect.poll(() => delta(engine.counters(), before).outsideDrop("source_not_in_subnet")).toBeGreaterThanOrEqual(2);
  });

  it("answers an IPv6 destination no peer covers with ICMPv6 destination unreachable, and hop limit 1 with time exceeded", async () => {
    const before = engine.counters();
    const unroutable = await ping(hosts.a, "fd70:0:0:77::1", { count: 2 });
    expect(unroutable.received).toBe(0);
    expect(unroutable.output).toMatch(/Destination unreachable: No route/i);
    const expiring = await execInNamespace(hosts.a, "ping", ["-n", "-c", "1", "-W", "1", "-t", "1", TUN6_B], { allowFailure: true });
    expect(expiring.stdout + expiring.stderr).toMatch(/Time exceeded: Hop limit/i);
    const d = delta(engine.counters(), before);
    expect(d.insideDrop("no_route")).toBeGreaterThanOrEqual(2);
    expect(d.insideDrop("ttl_exceeded")).toBeGreaterThanOrEqual(1);
    expect(d.inside("icmp_sent")).toBeGreaterThanOrEqual(3);
  });

  it("still forwards IPv4 in the same engine, both ways and at the MTU", async () => {
    expect((await ping(hosts.a, TUN_B)).received).toBe(3);
    expect((await ping(hosts.b, TUN_A)).received).toBe(3);
    expect((await ping(hosts.a, TUN_B, { count: 2, size: MTU - 28, dontFragment: true })).received).toBe(2);
    expect((await ping(hosts.b, TUN_A, { count: 2, size: MTU - 28, dontFragment: true })).received).toBe(2);
  });

  it("removes an IPv6 peer: its subnet becomes unreachable, IPv4 stays", async () => {
    expect(engine.removePeerV6(SUBNET6_B)).toBe(true);
    expect(engine.removePeerV6(SUBNET6_B)).toBe(false);
    const gone = await ping(hosts.a, TUN6_B, { count: 1 });
    expect(gone.output).toMatch(/Destination unreachable/i);
    expect((await ping(hosts.a, TUN_B, { count: 1 })).received).toBe(1);
    engine.setPeer({
      subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B,
      ipv6: { subnet: SUBNET6_B, publicIPv6: UNDERLAY6_B, vtepMac: MAC_B6 },
    });
    expect((await ping(hosts.a, TUN6_B, { count: 1 })).received).toBe(1);
  });

  it("reports TCPv6 and TCPv4 iperf3 throughput over the same path, both directions (numbers only)", async () => {
    const gbps = (report: { end: { sum_received: { bits_per_second: number } } }) => (report.end.sum_received.bits_per_second / 1e9).toFixed(2);
    const lines: string[] = [];
    for (const [label, args] of [["engine -> kernel", []], ["kernel -> engine", ["-R"]]] as const) {
      const v6 = await iperfAToB(hosts, args, TUN6_B);
      const v4 = await iperfAToB(hosts, args, TUN_B);
      expect(v6.end.sum_received.bytes).toBeGreaterThan(1_000_000);
      expect(v4.end.sum_received.bytes).toBeGreaterThan(1_000_000);
      lines.push(`${label}: TCPv6 ${gbps(v6)} Gb/s, TCPv4 ${gbps(v4)} Gb/s`);
    }
    console.log(`userspace vxlan engine <-> kernel flannel peer, iperf3 1 stream 2 s: ${lines.join("; ")}`);
  });
});

describe("userspace vxlan over IPv6 between two engines", () => {
  let pair: TwoHosts;
  let engineA: Engine;
  let engineB: Engine;
  const route = (subnet: typeof SUBNET_A, publicIP: string, vtepMac: string, subnet6: Ipv6Subnet, publicIPv6: string) => ({
    subnet, publicIP, vtepMac, ipv6: { subnet: subnet6, publicIPv6, vtepMac },
  });

  beforeAll(async () => {
    pair = await createTwoHosts();
    await addIpv6Underlay(pair);
    // Two queues each: IPv6 datagrams are steered to a queue by their inner flow (steer_by_flow6).
    const common = { mode: "vxlan", tunName: "wt0", mtu: MTU, mtuV6: MTU6, vni: VNI, queues: 2 } as const;
    engineA = openEngine({ ...common, bindAddress: UNDERLAY_A, bindAddressV6: UNDERLAY6_A, netns: pair.a, icmpSource: TUN_A, icmpSourceV6: TUN6_A, vtepMac: MAC_A });
    engineB = openEngine({ ...common, bindAddress: UNDERLAY_B, bindAddressV6: UNDERLAY6_B, netns: pair.b, icmpSource: TUN_B, icmpSourceV6: TUN6_B, vtepMac: MAC_B });
    await addressTun("wt0", SUBNET_A, NETWORK, pair.a, { ownSubnet: SUBNET6_A, network: NETWORK6 });
    await addressTun("wt0", SUBNET_B, NETWORK, pair.b, { ownSubnet: SUBNET6_B, network: NETWORK6 });
    engineA.setPeer(route(SUBNET_B, UNDERLAY_B, MAC_B, SUBNET6_B, UNDERLAY6_B));
    engineB.setPeer(route(SUBNET_A, UNDERLAY_A, MAC_A, SUBNET6_A, UNDERLAY6_A));
  });

  afterAll(async () => {
    engineA?.close();
    engineB?.close();
    await pair?.destroy();
  });

  it("moves 16 MB over TCPv6 intact over 2 queues; the receiver coalesces the segments (GRO, GSO_TCPV6 into its TUN)", async () => {
    expect(engineB.features.reuseportFlow).toBe(true);
    expect((await ping(pair.a, TUN6_B)).received).toBe(3);
    const before = engineB.counters();
    const out = await verifiedTransfer(pair.a, pair.b, TUN6_B, { port: 5208 });
    expect(out.received).toBe(out.sent);
    const d = delta(engineB.counters(), before);
    expect(d.outside("coalesced_packets")).toBeGreaterThan(0);
    expect(d.outside("ipv6_packets")).toBeGreaterThan(1000);
    expect(engineA.counters().inside.detail.super_packets).toBeGreaterThan(0);
  });
});

describe("engine with an IPv6 underlay: lifecycle and errors", () => {
  const fdCount = () => readdirSync("/proc/self/fd").length;
  const options = {
    mode: "vxlan", tunName: "wt9", mtu: MTU, mtuV6: MTU6, port: 8479, vni: VNI, vtepMac: MAC_A,
    bindAddress: UNDERLAY_A, bindAddressV6: UNDERLAY6_A,
  } as const;

  it("opens and closes 20 times with 2 queues (an IPv6 SO_REUSEPORT group steered by inner flow) without leaking fds", () => {
    openEngine({ ...options, netns: hosts.a, queues: 2 }).close();
    const fds = fdCount();
    for (let i = 0; i < 20; i++) {
      const e = openEngine({ ...options, netns: hosts.a, queues: 2 });
      expect(e.features.ipv6Underlay).toBe(true);
      expect(e.features.reuseportFlow).toBe(true);
      e.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B, ipv6: { subnet: SUBNET6_B, publicIPv6: UNDERLAY6_B, vtepMac: MAC_B6 } });
      e.close();
    }
    expect(fdCount()).toBe(fds);
  });

  it("names the address, option or peer when IPv6 cannot be set up", () => {
    expect(() => openEngine({ ...options, netns: hosts.a, bindAddressV6: "fd70:90::99" }))
      .toThrow(/cannot bind UDP \[fd70:90::99\]:8479: Cannot assign requested address/);
    expect(() => openEngine({ ...options, netns: hosts.a, bindAddressV6: "10.1.1.1" })).toThrow(/engine bindAddressV6: "10.1.1.1" is not an IPv6 address/);
    expect(() => openEngine({ mode: "udp", tunName: "wt9", mtu: 1472, bindAddress: UNDERLAY_A, bindAddressV6: UNDERLAY6_A, netns: hosts.a }))
      .toThrow(/bindAddressV6 fd70:90::1: IPv6 is forwarded in vxlan and wireguard mode only/);
    const v4only = openEngine({ ...options, bindAddressV6: undefined, netns: hosts.a });
    try {
      expect(v4only.features.ipv6Underlay).toBe(false);
      expect(() => v4only.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B, ipv6: { subnet: SUBNET6_B, publicIPv6: UNDERLAY6_B, vtepMac: MAC_B6 } }))
        .toThrow(/peer 10.70.2.0\/24: IPv6 subnet fd70:0:0:2::\/64 needs an engine opened with bindAddressV6/);
      expect(v4only.removePeerV6(SUBNET6_B)).toBe(false);
    } finally {
      v4only.close();
    }
    const dual = openEngine({ ...options, netns: hosts.a });
    try {
      expect(() => dual.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B, ipv6: { subnet: SUBNET6_B, publicIPv6: "fd70::zz", vtepMac: MAC_B6 } }))
        .toThrow(/PublicIPv6 of peer fd70:0:0:2::\/64: "fd70::zz" is not an IPv6 address/);
    } finally {
      dual.close();
    }
  });
});
