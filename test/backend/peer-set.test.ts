import { describe, expect, it } from "vitest";
import type { RouteState } from "../../src/kernel/kernel.js";
import { PeerSet, type Refusal } from "../../src/backend/peer-set.js";
import type { Lease } from "../../src/lease/types.js";
import { capturingLogger, lease } from "./kernel-fixtures.js";

/** A backend whose classify() refuses PublicIPs listed in `unreachable` (a stand-in for "not on-link"). */
function peerSet(unreachable: Map<string, string>) {
  const { logger, lines } = capturingLogger();
  const set = new PeerSet<Lease>({
    backendType: "host-gw",
    ownPublicIP: "192.168.1.1",
    logger,
    classify: (peer: Lease, _routes: readonly RouteState[]): Lease | Refusal => {
      const why = unreachable.get(peer.attrs.publicIP);
      return why === undefined ? peer : { refused: why, level: "error" };
    },
  });
  const subnets = () => [...set.peers()].map((peer) => peer.subnet.toString()).sort();
  return { set, lines, subnets };
}

const own = lease("10.66.1.0/24", { publicIP: "192.168.1.1", backendType: "host-gw" });
const peer = (subnet: string, publicIP: string, backendType = "host-gw") => lease(subnet, { publicIP, backendType });

describe("PeerSet", () => {
  it("logs a refusal once, again only when its reason changes, and once more when the peer becomes usable", () => {
    const unreachable = new Map([["192.168.9.9", "not on-link (reached through a gateway)"]]);
    const { set, lines } = peerSet(unreachable);
    set.setOwnLease(own, []);
    set.apply([{ kind: "added", lease: peer("10.66.9.0/24", "192.168.9.9") }], []);
    set.reclassify([]);
    set.reclassify([]);
    expect(lines.filter((line) => line.level === 50).map((line) => line.msg)).toEqual(["10.66.9.0/24: not on-link (reached through a gateway)"]);
    unreachable.set("192.168.9.9", "not on-link (it is on eth1)");
    set.reclassify([]);
    set.reclassify([]);
    expect(lines.filter((line) => line.level === 50)).toHaveLength(2);
    unreachable.delete("192.168.9.9");
    set.reclassify([]);
    expect(set.refusedCount).toBe(0);
    expect(set.acceptedCount).toBe(1);
    expect(lines.at(-1)?.msg).toBe("10.66.9.0/24: the peer can be served now");
  });

  it("refuses, with one warning, leases of another backend type and leases advertising our own PublicIP", () => {
    const { set, lines, subnets } = peerSet(new Map());
    set.setOwnLease(own, []);
    const events = [
      { kind: "added" as const, lease: peer("10.66.2.0/24", "192.168.1.2", "vxlan") },
      { kind: "added" as const, lease: lease("10.66.3.0/24", { publicIP: "192.168.1.3" }) },
      { kind: "added" as const, lease: peer("10.66.4.0/24", "192.168.1.1") },
      { kind: "added" as const, lease: peer("10.66.5.0/24", "192.168.1.5") },
    ];
    set.apply(events, []);
    set.apply(events, []);
    set.reclassify([]);
    expect(subnets()).toEqual(["10.66.5.0/24"]);
    const warnings = lines.filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^10\.66\.2\.0\/24: lease .* is of backend type "vxlan", not "host-gw"/);
    expect(warnings[1]).toMatch(/^10\.66\.3\.0\/24: lease .* is of backend type "udp"/);
    expect(warnings[2]).toMatch(/^10\.66\.4\.0\/24: lease .* advertises this host's own PublicIP 192\.168\.1\.1/);
    expect(set.refusedReasons()).toHaveLength(3);
    set.apply([{ kind: "removed", lease: peer("10.66.4.0/24", "192.168.1.1") }], []);
    expect(set.refusedCount).toBe(2);
  });

  it("a new own lease drops the peer holding that subnet and takes back a peer of the former one", () => {
    const { set, subnets } = peerSet(new Map());
    set.setOwnLease(own, []);
    set.apply(
      [
        { kind: "added", lease: peer("10.66.1.0/24", "192.168.1.7") }, // our subnet: never a peer
        { kind: "added", lease: peer("10.66.8.0/24", "192.168.1.8") },
      ],
      [],
    );
    expect(subnets()).toEqual(["10.66.8.0/24"]);
    set.setOwnLease(lease("10.66.8.0/24", { publicIP: "192.168.1.1", backendType: "host-gw" }), []);
    expect(subnets()).toEqual(["10.66.1.0/24"]);
    expect(set.refusedCount).toBe(0);
  });
});
