/**
 * Userspace vxlan mode (topology: see two-hosts.ts; TUN MTU 1450 = 1500 - 50).
 *  1. engine A <-> engine B: RFC 7348 both ways; TTL untouched (as kernel vxlan: 64).
 *  2. engine A <-> a kernel vxlan device in B configured as flanneld configures flannel.1:
 *     nolearning, dstport 8472, permanent neigh + fdb entries, onlink route.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace, ipBatch } from "../../src/lab/netns.js";
import {
  NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B,
  createTwoHosts, iperfAToB, ping, type TwoHosts,
} from "./two-hosts.js";

const MAC_A = "0a:11:22:33:44:01";
const MAC_B = "0a:11:22:33:44:02";
const VNI = 1;

let hosts: TwoHosts;
let engineA: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  engineA = openEngine({
    mode: "vxlan", tunName: "wt0", mtu: 1450, bindAddress: UNDERLAY_A, netns: hosts.a,
    icmpSource: TUN_A, vni: VNI, vtepMac: MAC_A,
  });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: MAC_B });
});

afterAll(async () => {
  engineA?.close();
  await hosts?.destroy();
});

describe("userspace vxlan engine", () => {
  it("pings another userspace vxlan engine and carries a TCP stream", async () => {
    const engineB = openEngine({
      mode: "vxlan", tunName: "wt0", mtu: 1450, bindAddress: UNDERLAY_B, netns: hosts.b, vni: VNI, vtepMac: MAC_B,
    });
    try {
      await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
      engineB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A, vtepMac: MAC_A });
      const result = await ping(hosts.a, TUN_B, { count: 3 });
      expect(result.received, result.output).toBe(3);
      expect(result.ttl).toBe(64);
      expect((await ping(hosts.a, TUN_B, { count: 2, size: 1450 - 28, dontFragment: true })).received).toBe(2);

      const report = await iperfAToB(hosts);
      expect(report.end.sum_received.bytes).toBeGreaterThan(10_000_000);
      console.log(`vxlan engine iperf3: ${(report.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gb/s`);
      expect(engineB.counters().outside.detail.coalesced_packets).toBeGreaterThan(0);
    } finally {
      engineB.close();
    }
  });

  it("interoperates with a kernel vxlan device configured as flanneld's flannel.1", async () => {
    await ipBatch(hosts.b, [
      `link add flannel.1 address ${MAC_B} type vxlan id ${VNI} local ${UNDERLAY_B} dev ul0 dstport 8472 nolearning`,
      "link set flannel.1 mtu 1450 up",
      `addr add ${TUN_B}/32 dev flannel.1`,
      `neigh replace ${TUN_A} lladdr ${MAC_A} dev flannel.1 nud permanent`,
      `route replace ${SUBNET_A} via ${TUN_A} dev flannel.1 onlink`,
    ]);
    await execInNamespace(hosts.b, "bridge", ["fdb", "append", MAC_A, "dev", "flannel.1", "dst", UNDERLAY_A]);

    const before = engineA.counters();
    const fromEngine = await ping(hosts.a, TUN_B, { count: 3 });
    expect(fromEngine.received, fromEngine.output).toBe(3);
    const fromKernel = await ping(hosts.b, TUN_A, { count: 3 });
    expect(fromKernel.received, fromKernel.output).toBe(3);
    // Biggest packet both ways, DF set: 1450 inner = 1500 on the wire.
    expect((await ping(hosts.b, TUN_A, { count: 2, size: 1450 - 28, dontFragment: true })).received).toBe(2);
    expect((await ping(hosts.a, TUN_B, { count: 2, size: 1450 - 28, dontFragment: true })).received).toBe(2);
    // Counted after the TUN write: the last reply can reach ping a moment before it is counted.
    await expect.poll(() => engineA.counters().outside.packets - before.outside.packets).toBeGreaterThanOrEqual(10);
    expect(engineA.counters().outside.drops.wrong_vni).toBe(before.outside.drops.wrong_vni);

    const report = await iperfAToB(hosts, ["--bidir"]);
    expect(report.end.sum_received.bytes).toBeGreaterThan(10_000_000);
    expect(report.end.sum_received_bidir_reverse?.bytes).toBeGreaterThan(10_000_000);
  });
});
