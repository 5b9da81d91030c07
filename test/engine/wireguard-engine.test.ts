/**
 * wireguard mode between two weft engines (topology: see two-hosts.ts; both TUNs MTU 1420 =
 * 1500 - 80, flannel's wireguard overhead). The handshake runs in this process
 * (src/engine/wireguard/), every packet is sealed and opened in the engine's threads.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { generateStaticKeys } from "../../src/engine/wireguard/noise.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import {
  NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B,
  createTwoHosts, iperfAToB, ping, type TwoHosts,
} from "./two-hosts.js";

let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;
const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
const PORT = 51820;

beforeAll(async () => {
  hosts = await createTwoHosts();
  engineA = openEngine({ mode: "wireguard", tunName: "wt0", mtu: 1420, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A, port: PORT, wireguard: { privateKey: keysA.privateKey } });
  engineB = openEngine({ mode: "wireguard", tunName: "wt0", mtu: 1420, bindAddress: UNDERLAY_B, netns: hosts.b, icmpSource: TUN_B, port: PORT, wireguard: { privateKey: keysB.privateKey } });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
  engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: keysB.publicKey.toString("base64"), port: PORT });
  engineB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A, publicKey: keysA.publicKey.toString("base64"), port: PORT });
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("wireguard engine", () => {
  it("handshakes on the first packet and pings both ways", async () => {
    // The first echo request only triggers the handshake (no packet is queued meanwhile).
    await ping(hosts.a, TUN_B, { count: 2 });
    const ab = await ping(hosts.a, TUN_B, { count: 3 });
    expect(ab.received, ab.output).toBe(3);
    const ba = await ping(hosts.b, TUN_A, { count: 3 });
    expect(ba.received, ba.output).toBe(3);
    const status = engineA.wireguardStatus();
    expect(status?.publicKey).toBe(keysA.publicKey.toString("base64"));
    expect(status?.peers[0]?.handshakes).toBeGreaterThanOrEqual(1);
    expect(engineB.counters().outside.detail.handshake_messages).toBeGreaterThanOrEqual(1);
  });

  it("carries a maximum-size DF ping (1420-byte packets)", async () => {
    const result = await ping(hosts.a, TUN_B, { count: 2, size: 1420 - 28, dontFragment: true });
    expect(result.received, result.output).toBe(2);
  });

  it("moves a TCP stream", async () => {
    const report = await iperfAToB(hosts);
    expect(report.end.sum_received.bytes).toBeGreaterThan(5_000_000);
    const b = engineB.counters();
    expect(b.outside.drops.bad_mac).toBe(0);
    expect(b.outside.drops.replay).toBe(0);
    console.log(`wireguard engine iperf3: ${(report.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gb/s`);
  });
});
