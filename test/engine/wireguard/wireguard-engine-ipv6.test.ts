/**
 * wireguard mode with the IPv6 interface (Mode "separate", as flanneld's flannel-wg and
 * flannel-wg-v6) between two weft engines; topology two-hosts.ts with its IPv6 underlay:
 *
 *     <p>a  (engine A, in-process)                   <p>b  (engine B, in-process)
 *   +----------------------------------+           +----------------------------------+
 *   | tun wt0 10.70.1.0/32, fd70:0:0:1::/128        | tun wt0 10.70.2.0/32, fd70:0:0:2::/128
 *   |  routes 10.70.0.0/16, fd70::/48  |           |  routes 10.70.0.0/16, fd70::/48  |
 *   |  IPv4 interface udp 192.168.90.1:51820 <---> 192.168.90.2:51820                  |
 *   |  IPv6 interface udp [fd70:90::1]:51821 <---> [fd70:90::2]:51821                  |
 *   +----------------------------------+  veth ul0  +--------------------------------+
 *
 * Each interface has its own peer (same key), its own sessions and handshakes; IPv4 subnets route
 * to the IPv4 interface's peer, IPv6 subnets to the IPv6 interface's. TUN MTU 1420 (1500 − 80).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineCounters } from "../../../src/engine/counters.js";
import { openEngine, type Engine, type PeerRoute, type WireguardEngineOptions } from "../../../src/engine/engine.js";
import { generateStaticKeys, type StaticKeys } from "../../../src/engine/wireguard/noise.js";
import { addressTun } from "../../../src/kernel/tun-routing.js";
import { ipBatch } from "../../../src/lab/netns.js";
import {
  NETWORK, NETWORK6, SUBNET6_A, SUBNET6_B, SUBNET_A, SUBNET_B, TUN6_A, TUN6_B, TUN_A, TUN_B, UNDERLAY6_A, UNDERLAY6_B,
  UNDERLAY_A, UNDERLAY_B, addIpv6Underlay, createTwoHosts, ping, type TwoHosts,
} from "../two-hosts.js";

const PORT = 51820;
const PORT_V6 = 51821;
const MTU = 1420;
/** An address on b outside b's IPv6 subnet: what b sends from it is spoofed as far as a is concerned. */
const SPOOFED6 = "fd70:0:0:9::1";

const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;

const routeTo = (keys: StaticKeys, side: "a" | "b"): PeerRoute => ({
  subnet: side === "a" ? SUBNET_A : SUBNET_B,
  publicIP: side === "a" ? UNDERLAY_A : UNDERLAY_B,
  publicKey: keys.publicKey.toString("base64"),
  port: PORT,
  ipv6: { subnet: side === "a" ? SUBNET6_A : SUBNET6_B, publicIPv6: side === "a" ? UNDERLAY6_A : UNDERLAY6_B, publicKey: keys.publicKey.toString("base64"), port: PORT_V6 },
});

function openDualStack(side: "a" | "b", keys: StaticKeys, extra: Omit<WireguardEngineOptions, "privateKey"> = {}): Engine {
  const a = side === "a";
  return openEngine({
    mode: "wireguard", tunName: "wt0", mtu: MTU, port: PORT, portV6: PORT_V6, netns: a ? hosts.a : hosts.b,
    bindAddress: a ? UNDERLAY_A : UNDERLAY_B, icmpSource: a ? TUN_A : TUN_B,
    bindAddressV6: a ? UNDERLAY6_A : UNDERLAY6_B, icmpSourceV6: a ? TUN6_A : TUN6_B,
    wireguard: { privateKey: keys.privateKey, ...extra },
  });
}

const delta = (after: EngineCounters, before: EngineCounters) => ({
  inside: (key: string) => (after.inside.detail[key] ?? 0) - (before.inside.detail[key] ?? 0),
  outside: (key: string) => (after.outside.detail[key] ?? 0) - (before.outside.detail[key] ?? 0),
  outsideDrop: (key: string) => (after.outside.drops[key] ?? 0) - (before.outside.drops[key] ?? 0),
});

beforeAll(async () => {
  hosts = await createTwoHosts();
  await addIpv6Underlay(hosts);
  engineA = openDualStack("a", keysA);
  engineB = openDualStack("b", keysB);
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a, { ownSubnet: SUBNET6_A, network: NETWORK6 });
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b, { ownSubnet: SUBNET6_B, network: NETWORK6 });
  engineA.setPeer(routeTo(keysB, "b"));
  engineB.setPeer(routeTo(keysA, "a"));
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("wireguard engine, IPv6 interface (Mode separate)", () => {
  it("pings both families both ways, each over its own interface, socket and sessions", async () => {
    const before = engineA.counters();
    for (const [from, to] of [[hosts.a, TUN_B], [hosts.a, TUN6_B], [hosts.b, TUN_A], [hosts.b, TUN6_A]] as const) {
      const result = await ping(from, to, { count: 3, timeoutSeconds: 3 });
      expect(result.received, `${from} → ${to}\n${result.output}`).toBeGreaterThanOrEqual(2);
    }
    const d = delta(engineA.counters(), before);
    expect(d.inside("ipv6_packets")).toBeGreaterThanOrEqual(3);
    expect(d.outside("ipv6_packets")).toBeGreaterThanOrEqual(3);
    const status = engineA.wireguardStatus();
    // One peer state per interface for the one key: two handshakes, two endpoints.
    expect(status?.peers.map((peer) => peer.endpoint).sort()).toEqual([`${UNDERLAY_B}:${PORT}`, `[${UNDERLAY6_B}]:${PORT_V6}`].sort());
    expect(status?.peers.every((peer) => peer.publicKey === keysB.publicKey.toString("base64") && peer.handshakes >= 1)).toBe(true);
  });

  it("carries a maximum-size DF ping over IPv6 (1420-byte packets)", async () => {
    const result = await ping(hosts.a, TUN6_B, { count: 2, size: MTU - 40 - 8, dontFragment: true, timeoutSeconds: 2 });
    expect(result.received, result.output).toBe(2);
  });

  it("drops and counts an inner IPv6 packet from the IPv6 peer whose source is outside its IPv6 subnet", async () => {
    await ipBatch(hosts.b, [`addr add ${SPOOFED6}/128 dev wt0 nodad`]);
    const before = engineA.counters();
    const result = await ping(hosts.b, TUN6_A, { count: 3, source: SPOOFED6, timeoutSeconds: 1 });
    expect(result.received).toBe(0);
    expect(delta(engineA.counters(), before).outsideDrop("source_not_in_subnet")).toBeGreaterThanOrEqual(3);
    // The genuine source still passes.
    expect((await ping(hosts.b, TUN6_A, { count: 2 })).received).toBeGreaterThanOrEqual(1);
  });

  // flanneld's flannel-wg-v6 holds the peers whose leases have an IPv6 half, and only those: a key
  // on the IPv4 interface alone is no peer of the IPv6 one, whose handshakes it cannot pass.
  it("drops a handshake on the IPv6 socket from a key known only on the IPv4 interface (unknown_peer), and zeroes the removed IPv6 peer's sessions", async () => {
    const key = keysB.publicKey.toString("base64");
    expect(engineA.removePeerV6(SUBNET6_B)).toBe(true);
    expect(engineA.wireguardStatus()?.peers.map((peer) => peer.endpoint)).toEqual([`${UNDERLAY_B}:${PORT}`]);
    const dropsBefore = engineA.wireguardStatus()?.handshakeDrops.unknown_peer ?? 0;
    // B's IPv6 sessions to A are still current: what it seals on them no session of A opens any more.
    const before = engineA.counters();
    expect((await ping(hosts.b, TUN6_A, { count: 2, timeoutSeconds: 1 })).received).toBe(0);
    expect(delta(engineA.counters(), before).outsideDrop("unknown_session")).toBeGreaterThanOrEqual(1);
    // A fresh IPv6 peer state on B (a new handshake over IPv6) is refused by A's IPv6 interface.
    engineB.removePeerV6(SUBNET6_A);
    engineB.setPeer(routeTo(keysA, "a"));
    expect((await ping(hosts.b, TUN6_A, { count: 2, timeoutSeconds: 1 })).received).toBe(0);
    await expect.poll(() => engineA.wireguardStatus()?.handshakeDrops.unknown_peer ?? 0, { timeout: 3000 }).toBeGreaterThan(dropsBefore);
    // IPv4 on the same key is untouched.
    expect((await ping(hosts.b, TUN_A, { count: 2 })).received).toBeGreaterThanOrEqual(1);
    expect(engineA.wireguardStatus()?.peers.map((peer) => peer.publicKey)).toEqual([key]);
    // The IPv6 half back: B's next retry (REKEY_TIMEOUT, 5 s) or A's own initiation handshakes again.
    engineA.setPeer(routeTo(keysB, "b"));
    expect((await ping(hosts.a, TUN6_B, { count: 3, timeoutSeconds: 3 })).received).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it("rotates the static key on both interfaces", async () => {
    const next = generateStaticKeys();
    engineA.setWireguardPrivateKey(next.privateKey);
    engineB.setPeer(routeTo(next, "a"));
    for (const target of [TUN_A, TUN6_A]) {
      const result = await ping(hosts.b, target, { count: 3, timeoutSeconds: 3 });
      expect(result.received, `${target}\n${result.output}`).toBeGreaterThanOrEqual(1);
    }
    expect(engineA.wireguardStatus()?.publicKey).toBe(next.publicKey.toString("base64"));
    expect(engineB.wireguardStatus()?.peers.map((peer) => peer.publicKey)).toEqual([next.publicKey.toString("base64"), next.publicKey.toString("base64")]);
  }, 20_000);
});

describe("wireguard engine, IPv6 interface under load", () => {
  beforeAll(async () => {
    engineA.close();
    engineB.close();
    // A is under load from the first handshake message on: every initiation without a valid
    // mac2 gets a cookie reply (to its IPv6 source on the IPv6 socket); B retries after 1 s with mac2.
    engineA = openDualStack("a", keysA, { defence: { underLoadMessagesPerSecond: 0, rateLimits: { perSecond: 20, burst: 5, maxSources: 64 } } });
    engineB = openDualStack("b", keysB, { timers: { rekeyTimeoutMs: 1000 } });
    await addressTun("wt0", SUBNET_A, NETWORK, hosts.a, { ownSubnet: SUBNET6_A, network: NETWORK6 });
    await addressTun("wt0", SUBNET_B, NETWORK, hosts.b, { ownSubnet: SUBNET6_B, network: NETWORK6 });
    engineA.setPeer(routeTo(keysB, "b"));
    engineB.setPeer(routeTo(keysA, "a"));
  });

  it("answers an IPv6 initiation with a cookie reply, and the retry with mac2 handshakes", async () => {
    const result = await ping(hosts.b, TUN6_A, { count: 4, timeoutSeconds: 4 });
    expect(result.received, result.output).toBeGreaterThanOrEqual(1);
    const status = engineA.wireguardStatus();
    expect(status?.cookieRepliesSent).toBeGreaterThanOrEqual(1);
    expect(status?.handshakeDrops.cookie_sent).toBeGreaterThanOrEqual(1);
    expect(status?.peers.find((peer) => peer.endpoint.startsWith("["))?.handshakes).toBeGreaterThanOrEqual(1);
  }, 20_000);
});
