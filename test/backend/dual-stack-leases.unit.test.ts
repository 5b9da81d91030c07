/*
 * Peer leases come from etcd, written by any host: the IPv6 half of a lease (ipv6Subnet,
 * PublicIPv6, BackendV6Data) must never crash the backend or reach `ip -batch` as a line it
 * cannot parse. Randomised over hostile values (seeded, so a failure replays), through the
 * vxlan backend's real classify and object code; no kernel is touched (no DirectRouting).
 */
import { describe, expect, it } from "vitest";
import { VxlanBackend } from "../../src/backend/vxlan/vxlan-backend.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { addLine, removeLine } from "../../src/kernel/objects.js";
import { peerIpv6 } from "../../src/backend/dual-stack.js";
import type { Lease } from "../../src/lease/types.js";
import { DUAL_STACK, backendContext, lease } from "./kernel-fixtures.js";
import { seededRandom } from "../support/seeded-random.js";

const ADDRESSES = [
  "fd00:97::12", "FD00:97:0:0:0:0:0:12", "fd00:97::12%ul0", "::", "::1", "fd00::97::1", "192.168.97.12", "::ffff:192.168.97.12",
  "fd00:97::1 dev lo", "fd00:97::1\nroute flush all", "", " ", "g::1", "1:2:3:4:5:6:7:8:9", "fe80::1", "x".repeat(5000),
];
const MACS = ["02:00:00:00:06:01", "02:00:00:00:06:0G", "02-00-00-00-06-01", "", "02:00:00:00:06:01 dev lo", "ff:ff:ff:ff:ff:ff", "0200.0000.0601"];
const VNIS: unknown[] = [1, 0, -1, 1.5, "1", null, 16_777_216, Number.MAX_SAFE_INTEGER];

describe("hostile IPv6 halves of peer leases (randomised, seeded)", () => {
  it("are refused or become objects that validate; nothing throws", async () => {
    const context = await backendContext({ Type: "vxlan" }, { name: "ul0", address: "192.168.97.11", addressV6: "fd00:97::11" }, undefined, DUAL_STACK);
    const own = lease("10.66.1.0/24", { publicIP: "192.168.97.11", publicIPv6: "fd00:97::11", backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" } }, "fd66:0:0:1::/64");
    const next = seededRandom(0x5eed6);
    const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
    let served = 0;
    let refused = 0;
    for (let round = 0; round < 40; round++) {
      const peers: Lease[] = [];
      for (let i = 0; i < 50; i++) {
        const n = round * 50 + i + 2;
        const v6Data: unknown = pick<unknown>([
          { VNI: pick(VNIS), VtepMAC: pick(MACS) },
          { VNI: 1 },
          { VtepMAC: pick(MACS) },
          "{\"VNI\":1}",
          null,
          undefined,
          [1, 2],
          { VNI: 1, VtepMAC: "02:00:00:00:06:01", Extra: { deep: true } },
        ]);
        peers.push(
          lease(
            `10.66.${(n >> 8) + 2}.${n & 255}/32`,
            {
              publicIP: `192.168.97.${(n % 200) + 20}`,
              publicIPv6: pick<string | null>([...ADDRESSES, null]),
              backendType: "vxlan",
              backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:02" },
              ...(v6Data === undefined ? {} : { backendV6Data: v6Data }),
            },
            next() < 0.9 ? `fd66:0:${(n >> 16) & 0xffff}:${n & 0xffff}::/64` : undefined,
          ),
        );
      }
      const backend = new VxlanBackend(context, new Kernel("never-used"));
      await backend.loadLeaseSet(own, peers);
      const objects = backend.desiredObjects();
      for (const object of objects) {
        expect(() => addLine(object)).not.toThrow();
        expect(() => removeLine(object)).not.toThrow();
        expect(addLine(object).line).not.toMatch(/[\n%]|dev lo/);
        if (object.kind === "fdb" && object.device === "flannel-v6.1") expect(object.destination).toMatch(/^fd00:97::12$/);
      }
      const refusals = backend.refusedPeers();
      for (const line of refusals) expect(line).toMatch(/BackendV6Data|PublicIPv6/);
      refused += refusals.length;
      served += peers.length - refusals.length;
      await backend.stop();
    }
    // Both outcomes happen, so the run exercised both paths.
    expect(served).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});

describe("peerIpv6: the IPv6 half both kernel backends serve", () => {
  /** `subnet` null: a single-stack lease. */
  const v6 = (publicIPv6: string | null, subnet: string | null = "fd66:0:0:2::/64") =>
    peerIpv6(lease("10.66.2.0/24", { publicIP: "192.168.97.12", publicIPv6, backendType: "vxlan" }, subnet ?? undefined));
  it.each<[string | null, RegExp]>([
    [null, /has the IPv6 subnet fd66:0:0:2::\/64 but no PublicIPv6/],
    ["fd00::97::1", /PublicIPv6 "fd00::97::1", not an IPv6 address/],
    ["::", /the unspecified address/],
    ["::1", /the loopback address/],
    ["ff02::1", /a multicast address/],
    ["fe80::12", /a link-local address/],
    ["::ffff:192.168.97.12", /an IPv4-mapped address/],
  ])("PublicIPv6 %s is refused", (address, reason) => {
    expect(v6(address)).toEqual({ refused: expect.stringMatching(reason), level: "warn" });
  });
  it("a usable one is canonical; a lease without an IPv6 subnet is single-stack", () => {
    expect(v6("FD00:97:0:0:0:0:0:12")).toEqual({ subnet: expect.anything(), publicIPv6: "fd00:97::12" });
    expect(v6("fd00:97::12", null)).toBeUndefined();
  });
});
