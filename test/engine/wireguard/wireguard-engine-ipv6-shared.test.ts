/**
 * wireguard mode with one interface for both families (ipv6Interface "shared", as flanneld's
 * Modes "auto"/"ipv4"/"ipv6": one flannel-wg, both subnets per peer); topology two-hosts.ts with
 * its IPv6 underlay:
 *
 *     <p>a  (engine A, in-process)                   <p>b  (engine B, in-process)
 *   +----------------------------------+           +----------------------------------+
 *   | tun wt0 10.70.1.0/32, fd70:0:0:1::/128        | tun wt0 10.70.2.0/32, fd70:0:0:2::/128
 *   |  udp 192.168.90.1:51820, [fd70:90::1]:51820 <-> 192.168.90.2:51820, [fd70:90::2]:51820
 *   |  peer B: endpoint [fd70:90::2]:51820          |  peer A: endpoint 192.168.90.1:51820
 *   +----------------------------------+  veth ul0  +--------------------------------+
 *
 * A reaches B over IPv6, B reaches A over IPv4: each family's packets ride whichever endpoint
 * the one peer state has, and each side follows the other's authenticated source (roaming).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineCounters } from "../../../src/engine/counters.js";
import { openEngine, type Engine, type PeerRoute } from "../../../src/engine/engine.js";
import { generateStaticKeys, type StaticKeys } from "../../../src/engine/wireguard/noise.js";
import { addressTun } from "../../../src/kernel/tun-routing.js";
import { ipBatch } from "../../../src/lab/netns.js";
import {
  NETWORK, NETWORK6, SUBNET6_A, SUBNET6_B, SUBNET_A, SUBNET_B, TUN6_A, TUN6_B, TUN_A, TUN_B, UNDERLAY6_A, UNDERLAY6_B,
  UNDERLAY_A, UNDERLAY_B, addIpv6Underlay, createTwoHosts, ping, type TwoHosts,
} from "../two-hosts.js";

const PORT = 51820;
const MTU = 1420;
const SPOOFED6 = "fd70:0:0:9::1";

const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;

const routeTo = (keys: StaticKeys, side: "a" | "b", endpointIPv6: boolean): PeerRoute => ({
  subnet: side === "a" ? SUBNET_A : SUBNET_B,
  publicIP: side === "a" ? UNDERLAY_A : UNDERLAY_B,
  publicKey: keys.publicKey.toString("base64"),
  port: PORT,
  ipv6: { subnet: side === "a" ? SUBNET6_A : SUBNET6_B, publicIPv6: side === "a" ? UNDERLAY6_A : UNDERLAY6_B },
  ...(endpointIPv6 ? { endpointIPv6: true } : {}),
});

function openShared(side: "a" | "b", keys: StaticKeys): Engine {
  const a = side === "a";
  return openEngine({
    mode: "wireguard", tunName: "wt0", mtu: MTU, port: PORT, portV6: PORT, ipv6Interface: "shared", netns: a ? hosts.a : hosts.b,
    bindAddress: a ? UNDERLAY_A : UNDERLAY_B, icmpSource: a ? TUN_A : TUN_B,
    bindAddressV6: a ? UNDERLAY6_A : UNDERLAY6_B, icmpSourceV6: a ? TUN6_A : TUN6_B,
    wireguard: { privateKey: keys.privateKey },
  });
}

const drop = (after: EngineCounters, before: EngineCounters, key: string) => (after.outside.drops[key] ?? 0) - (before.outside.drops[key] ?? 0);

beforeAll(async () => {
  hosts = await createTwoHosts();
  await addIpv6Underlay(hosts);
  engineA = openShared("a", keysA);
  engineB = openShared("b", keysB);
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a, { ownSubnet: SUBNET6_A, network: NETWORK6 });
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b, { ownSubnet: SUBNET6_B, network: NETWORK6 });
  engineA.setPeer(routeTo(keysB, "b", true));
  engineB.setPeer(routeTo(keysA, "a", false));
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("wireguard engine, one interface for both families (ipv6Interface shared)", () => {
  it("pings both families both ways over one peer state per side, A's peer at its IPv6 endpoint", async () => {
    // A first: its initiation goes to [fd70:90::2]:51820, so B learns A's IPv6 source.
    for (const [from, to] of [[hosts.a, TUN6_B], [hosts.a, TUN_B], [hosts.b, TUN_A], [hosts.b, TUN6_A]] as const) {
      const result = await ping(from, to, { count: 3, timeoutSeconds: 3 });
      expect(result.received, `${from} → ${to}\n${result.output}`).toBeGreaterThanOrEqual(2);
    }
    const peersA = engineA.wireguardStatus()?.peers ?? [];
    expect(peersA.map((peer) => peer.endpoint)).toEqual([`[${UNDERLAY6_B}]:${PORT}`]);
    expect(engineB.wireguardStatus()?.peers).toHaveLength(1);
  });

  it("carries a maximum-size DF ping of either family", async () => {
    expect((await ping(hosts.a, TUN6_B, { count: 2, size: MTU - 48, dontFragment: true, timeoutSeconds: 2 })).received).toBe(2);
    expect((await ping(hosts.a, TUN_B, { count: 2, size: MTU - 28, dontFragment: true, timeoutSeconds: 2 })).received).toBe(2);
  });

  it("drops and counts an inner IPv6 source outside the peer's IPv6 subnet", async () => {
    await ipBatch(hosts.b, [`addr add ${SPOOFED6}/128 dev wt0 nodad`]);
    const before = engineA.counters();
    expect((await ping(hosts.b, TUN6_A, { count: 3, source: SPOOFED6, timeoutSeconds: 1 })).received).toBe(0);
    expect(drop(engineA.counters(), before, "source_not_in_subnet")).toBeGreaterThanOrEqual(3);
  });

  it("keeps the peer's sessions while its IPv4 subnet still routes to it when the IPv6 subnet goes", async () => {
    expect(engineA.removePeerV6(SUBNET6_B)).toBe(true);
    expect(engineA.wireguardStatus()?.peers).toHaveLength(1);
    expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBeGreaterThanOrEqual(1);
    expect((await ping(hosts.a, TUN6_B, { count: 1, timeoutSeconds: 1 })).received).toBe(0);
    engineA.setPeer(routeTo(keysB, "b", true));
    expect((await ping(hosts.a, TUN6_B, { count: 2 })).received).toBeGreaterThanOrEqual(1);
  });
});
