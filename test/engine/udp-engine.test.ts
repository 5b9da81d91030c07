/**
 * udp mode between two engines (topology: see two-hosts.ts; both TUNs MTU 1472 = 1500 - 28).
 * flannel's udp wire format, TTL decremented on both paths, ICMP for unknown destinations.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import {
  NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B,
  createTwoHosts, iperfAToB, ping, type TwoHosts,
} from "./two-hosts.js";

let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  engineA = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A });
  engineB = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_B, netns: hosts.b, icmpSource: TUN_B });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
  engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
  engineB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A });
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("udp engine", () => {
  it("pings through, with TTL decremented once per engine on each path (64 - 2 = 62)", async () => {
    const result = await ping(hosts.a, TUN_B, { count: 3 });
    expect(result.received, result.output).toBe(3);
    expect(result.ttl).toBe(62);
    // The engine thread counts a packet after writing it into the TUN: the last reply can reach
    // ping a moment before it is counted.
    await expect.poll(() => engineA.counters().inside.packets).toBeGreaterThanOrEqual(3);
    await expect.poll(() => engineA.counters().outside.packets).toBeGreaterThanOrEqual(3);
    expect(engineA.features.vnetHeader).toBe(true);
  });

  it("carries a maximum-size DF ping (1472-byte packets) untruncated", async () => {
    const result = await ping(hosts.a, TUN_B, { count: 2, size: 1472 - 28, dontFragment: true });
    expect(result.received, result.output).toBe(2);
  });

  it("moves a TCP stream with TSO split on send and GRO coalescing on receive", async () => {
    const report = await iperfAToB(hosts);
    expect(report.end.sum_received.bytes).toBeGreaterThan(10_000_000);
    const a = engineA.counters();
    const b = engineB.counters();
    expect(a.inside.detail.super_packets).toBeGreaterThan(0);
    expect(b.outside.detail.coalesced_packets).toBeGreaterThan(0);
    expect(a.inside.drops.send_error).toBe(0);
    console.log(`udp engine iperf3: ${(report.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gb/s, ` +
      `inside batch ${(a.inside.batchDatagrams / a.inside.batches).toFixed(1)} datagrams/sendmmsg`);
  });

  it("answers an unknown destination with ICMP net-unreachable written into the TUN", async () => {
    const before = engineA.counters().inside;
    const result = await ping(hosts.a, "10.70.99.1", { count: 1 });
    expect(result.received).toBe(0);
    // icmp_sent is counted after the error is written into the TUN (ping may already have it).
    await expect.poll(() => engineA.counters().inside.detail.icmp_sent).toBeGreaterThan(before.detail.icmp_sent ?? 0);
    expect(engineA.counters().inside.drops.no_route).toBeGreaterThan(before.drops.no_route ?? 0);
  });

  it("drops a packet whose TTL would reach 0 (sender side and receiver side)", async () => {
    const beforeA = engineA.counters().inside.drops.ttl_exceeded ?? 0;
    const beforeB = engineB.counters().outside.drops.ttl_exceeded ?? 0;
    await execInNamespace(hosts.a, "ping", ["-n", "-c", "1", "-W", "1", "-t", "1", TUN_B], { allowFailure: true });
    await execInNamespace(hosts.a, "ping", ["-n", "-c", "1", "-W", "1", "-t", "2", TUN_B], { allowFailure: true });
    expect(engineA.counters().inside.drops.ttl_exceeded).toBe(beforeA + 1);
    expect(engineB.counters().outside.drops.ttl_exceeded).toBe(beforeB + 1);
  });

  it("stops delivery as soon as a peer is removed, and resumes when it is set again", async () => {
    expect(engineA.removePeer(SUBNET_B)).toBe(true);
    expect(engineA.removePeer(SUBNET_B)).toBe(false);
    expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBe(0);
    // B still has A as a peer, but A no longer accepts B's datagrams either.
    const before = engineA.counters().outside.drops.unknown_sender ?? 0;
    await ping(hosts.b, TUN_A, { count: 2 });
    expect(engineA.counters().outside.drops.unknown_sender).toBeGreaterThanOrEqual(before + 2);
    engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
    expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBe(2);
  });
});
