import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { describe, expect, it } from "vitest";
import type { RouteState } from "../../src/kernel/kernel.js";
import { PeerTable, type Refusal } from "../../src/backend/peer-table.js";
import type { Lease, PeerEvent } from "../../src/lease/types.js";
import { capturingLogger, lease } from "./kernel-fixtures.js";

/** A backend whose classify() refuses PublicIPs listed in `unreachable` (a stand-in for "not on-link"). */
function peerSet(unreachable: Map<string, string>) {
  const { logger, lines } = capturingLogger();
  const set = new PeerTable<Lease, readonly RouteState[]>({
    backendType: "host-gw",
    ownPublicIP: "192.168.1.1",
    logger,
    classify: (peer: Lease, _routes: readonly RouteState[]): Lease | Refusal => {
      const why = unreachable.get(peer.attrs.publicIP);
      return why === undefined ? peer : { refused: why, level: "error" };
    },
  });
  const subnets = () => [...set.peers()].map((peer) => peer.subnet!.toString()).sort();
  return { set, lines, subnets };
}

const own = lease("10.66.1.0/24", { publicIP: "192.168.1.1", backendType: "host-gw" });
const peer = (subnet: string, publicIP: string, backendType = "host-gw") => lease(subnet, { publicIP, backendType });

describe("PeerTable", () => {
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

/** A peer value of a backend with per-peer data (a WireGuard-like public key), not a Lease. */
interface KeyedPeer {
  subnet: string;
  publicKey: string;
}

function keyedTable(backendType: string) {
  const { logger, lines } = capturingLogger();
  const table = new PeerTable<KeyedPeer>({
    backendType,
    ownPublicIP: "192.168.1.1",
    logger,
    classify: (candidate) => {
      const publicKey = (candidate.attrs.backendData as { PublicKey?: string } | undefined)?.PublicKey;
      return publicKey ? { subnet: candidate.subnet!.toString(), publicKey } : { refused: "no PublicKey in BackendData", level: "warn" };
    },
  });
  return { table, lines };
}

function dualStack(subnet: string, v6: string, attrs: Parameters<typeof lease>[1]): Lease {
  const [address, length] = v6.split("/") as [string, string];
  const base = lease(subnet, attrs);
  return { ...base, ipv6Subnet: Ipv6Subnet.parse(v6), key: `${base.key}&${address}-${length}` };
}

const wg = (subnet: string, publicIP: string, publicKey?: string) =>
  lease(subnet, { publicIP, backendType: "wg", ...(publicKey ? { backendData: { PublicKey: publicKey } } : {}) });
const v4Peer = wg("10.66.52.0/24", "192.168.1.52", "k52");
const v6Peer = dualStack("10.66.52.0/24", "fd66:0:0:6::/64", { publicIP: "192.168.1.52", backendType: "wg", backendData: { PublicKey: "k52v6" } });

describe("PeerTable, table-driven", () => {
  it.each<{ what: string; backendType: string; events: PeerEvent[]; served: string[]; refused: string[]; changes: string[] }>([
    {
      what: "a peer value carries per-backend data",
      backendType: "wg",
      events: [{ kind: "added", lease: wg("10.66.2.0/24", "192.168.1.2", "k2") }],
      served: ["10.66.2.0/24 k2"],
      refused: [],
      changes: ["accepted 10.66.2.0-24"],
    },
    {
      what: "the backend's own refusal is listed with the subnet",
      backendType: "wg",
      events: [{ kind: "added", lease: wg("10.66.2.0/24", "192.168.1.2") }],
      served: [],
      refused: ["10.66.2.0/24: no PublicKey in BackendData"],
      changes: [],
    },
    {
      what: "a dual-stack lease is its own entry, named with its IPv6 subnet",
      backendType: "wg",
      events: [
        { kind: "added", lease: v4Peer },
        { kind: "added", lease: v6Peer },
        { kind: "added", lease: dualStack("10.66.53.0/24", "fd66:0:0:7::/64", { publicIP: "192.168.1.53", backendType: "wg" }) },
      ],
      served: ["10.66.52.0/24 k52", "10.66.52.0/24 k52v6"],
      refused: ["10.66.53.0/24,fd66:0:0:7::/64: no PublicKey in BackendData"],
      changes: ["accepted 10.66.52.0-24", "accepted 10.66.52.0-24&fd66:0:0:6::-64"],
    },
    {
      what: "a changed lease under another key drops the previous entry first",
      backendType: "wg",
      events: [
        { kind: "added", lease: v4Peer },
        { kind: "changed", lease: v6Peer, previous: v4Peer },
      ],
      served: ["10.66.52.0/24 k52v6"],
      refused: [],
      changes: ["accepted 10.66.52.0-24", "dropped 10.66.52.0-24", "accepted 10.66.52.0-24&fd66:0:0:6::-64"],
    },
    {
      what: "a removed lease is dropped, a refused one forgotten",
      backendType: "wg",
      events: [
        { kind: "added", lease: wg("10.66.2.0/24", "192.168.1.2", "k2") },
        { kind: "added", lease: wg("10.66.3.0/24", "192.168.1.3") },
        { kind: "removed", lease: wg("10.66.2.0/24", "192.168.1.2", "k2") },
        { kind: "removed", lease: wg("10.66.3.0/24", "192.168.1.3") },
      ],
      served: [],
      refused: [],
      changes: ["accepted 10.66.2.0-24", "dropped 10.66.2.0-24"],
    },
    {
      what: "a lease without BackendType is a udp lease",
      backendType: "udp",
      events: [
        { kind: "added", lease: lease("10.66.2.0/24", { publicIP: "192.168.1.2", backendData: { PublicKey: "k2" } }) },
        { kind: "added", lease: lease("10.66.3.0/24", { publicIP: "192.168.1.3", backendType: "udp", backendData: { PublicKey: "k3" } }) },
      ],
      served: ["10.66.2.0/24 k2", "10.66.3.0/24 k3"],
      refused: [],
      changes: ["accepted 10.66.2.0-24", "accepted 10.66.3.0-24"],
    },
    {
      what: "the own subnet is never a peer and never a refusal",
      backendType: "wg",
      events: [{ kind: "added", lease: wg("10.66.1.0/24", "192.168.1.7", "k7") }],
      served: [],
      refused: [],
      changes: [],
    },
  ])("$what", ({ backendType, events, served, refused, changes }) => {
    const { table } = keyedTable(backendType);
    table.setOwnLease(lease("10.66.1.0/24", { publicIP: "192.168.1.1", backendType }));
    const happened = table.apply(events);
    expect([...table.peers()].map((peer) => `${peer.subnet} ${peer.publicKey}`).sort()).toEqual(served);
    expect(table.refusedReasons()).toEqual(refused);
    expect(happened.map((change) => `${change.kind} ${change.key}`)).toEqual(changes);
  });

  it("reports what a new own lease changes: the peer holding it dropped, the others decided again", () => {
    const { table, lines } = keyedTable("wg");
    table.setOwnLease(lease("10.66.1.0/24", { publicIP: "192.168.1.1", backendType: "wg" }));
    table.apply([
      { kind: "added", lease: wg("10.66.2.0/24", "192.168.1.2", "k2") },
      { kind: "added", lease: wg("10.66.3.0/24", "192.168.1.3", "k3") },
    ]);
    const changes = table.setOwnLease(lease("10.66.2.0/24", { publicIP: "192.168.1.1", backendType: "wg" }));
    expect(changes.map((change) => `${change.kind} ${change.key}`)).toEqual(["dropped 10.66.2.0-24", "accepted 10.66.3.0-24"]);
    expect(table.refusedCount).toBe(0);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
  });

  it("refuses, with one warning, a dual-stack lease claiming our IPv6 subnet beside another IPv4 subnet, as our IPv4 subnet is never a peer", () => {
    const { table, lines } = keyedTable("wg");
    table.setOwnLease(dualStack("10.66.1.0/24", "fd66:0:0:1::/64", { publicIP: "192.168.1.1", backendType: "wg" }));
    const clash = dualStack("10.66.9.0/24", "fd66:0:0:1::/64", { publicIP: "192.168.1.9", backendType: "wg", backendData: { PublicKey: "k9" } });
    const fine = dualStack("10.66.8.0/24", "fd66:0:0:8::/64", { publicIP: "192.168.1.8", backendType: "wg", backendData: { PublicKey: "k8" } });
    const changes = table.apply([{ kind: "added", lease: clash }, { kind: "added", lease: fine }]);
    table.reclassify();
    expect(changes.map((change) => `${change.kind} ${change.key}`)).toEqual(["accepted 10.66.8.0-24&fd66:0:0:8::-64"]);
    expect(table.refusedReasons()).toEqual([
      "10.66.9.0/24,fd66:0:0:1::/64: lease /coreos.com/network/subnets/10.66.9.0-24&fd66:0:0:1::-64 claims our IPv6 subnet fd66:0:0:1::/64 (we hold /coreos.com/network/subnets/10.66.1.0-24&fd66:0:0:1::-64): two hosts on one IPv6 subnet; refused until one of them moves",
    ]);
    expect(lines.filter((line) => line.level === 40)).toHaveLength(1);
    // The clash ends (one of them moved): served from then on.
    const moved = dualStack("10.66.9.0/24", "fd66:0:0:9::/64", { publicIP: "192.168.1.9", backendType: "wg", backendData: { PublicKey: "k9" } });
    expect(table.apply([{ kind: "changed", lease: moved, previous: clash }]).map((change) => `${change.kind} ${change.key}`)).toEqual(["accepted 10.66.9.0-24&fd66:0:0:9::-64"]);
  });
});
