import { describe, expect, it } from "vitest";
import {
  countByFamily, describeOwnedObject, describeReconcileChange, formatReconcileReport, isDeviceChange, reconcileChangeFamily,
  type OwnedObject, type ReconcileChange,
} from "../../src/backend/reconcile-report.js";
import type { FdbObject, NeighbourObject, RouteObject } from "../../src/kernel/objects.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

const route: RouteObject = { kind: "route", destination: Ipv4Subnet.parse("10.66.5.0/24"), gateway: "10.66.5.0", device: "flannel.1", onlink: true };
const neigh: NeighbourObject = { kind: "neigh", address: "10.66.5.0", mac: "02:55:55:55:55:55", device: "flannel.1" };
const fdb: FdbObject = { kind: "fdb", mac: "02:55:55:55:55:55", device: "flannel.1", destination: "192.168.92.2" };
const peer: Extract<OwnedObject, { kind: "engine-peer" }> = { kind: "engine-peer", peer: { subnet: Ipv4Subnet.parse("10.70.2.0/24"), publicIP: "192.168.90.2", vtepMac: "0a:00:00:00:00:02" } };

// The lines are the ones weft logged and `weft doctor` printed when reports were strings: users and scripts read them.
describe("reconcile report lines", () => {
  it.each<[string, OwnedObject, string]>([
    ["route", route, "route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink"],
    ["neighbour", neigh, "neigh 10.66.5.0 lladdr 02:55:55:55:55:55 dev flannel.1 permanent"],
    ["FDB entry", fdb, "fdb 02:55:55:55:55:55 dev flannel.1 dst 192.168.92.2 self permanent"],
    ["TUN device", { kind: "tun-device", device: "wt0" }, "device wt0"],
    ["TUN address", { kind: "tun-address", address: "10.70.1.0/32", device: "wt0" }, "address 10.70.1.0/32 dev wt0"],
    ["TUN route", { kind: "tun-route", destination: "10.70.0.0/16", device: "wt0" }, "route 10.70.0.0/16 dev wt0"],
    ["vxlan engine peer", peer, "peer 10.70.2.0/24 via 192.168.90.2 mac 0a:00:00:00:00:02"],
    ["udp engine peer", { kind: "engine-peer", peer: { subnet: Ipv4Subnet.parse("10.70.2.0/24"), publicIP: "192.168.90.2" } }, "peer 10.70.2.0/24 via 192.168.90.2"],
    ["WireGuard device peer", { kind: "wireguard-peer", device: "flannel-wg", publicKey: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=", endpoint: "[fd77::12]:51821", allowedIps: ["10.66.2.0/24", "fd66:0:0:2::/64"] },
      "peer aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28= endpoint [fd77::12]:51821 allowed-ips 10.66.2.0/24,fd66:0:0:2::/64 dev flannel-wg"],
    ["WireGuard device peer without endpoint or allowed IPs", { kind: "wireguard-peer", device: "flannel-wg", publicKey: "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=", endpoint: undefined, allowedIps: [] },
      "peer aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28= endpoint (none) allowed-ips (none) dev flannel-wg"],
  ])("%s", (_what, object, line) => {
    expect(describeOwnedObject(object)).toBe(line);
  });

  it.each<[string, ReconcileChange, boolean]>([
    ["add route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink", { action: "add", object: route }, false],
    [
      "replace fdb 02:55:55:55:55:55 dev flannel.1 dst 192.168.92.2 self permanent (was: fdb 02:55:55:55:55:55 dev flannel.1 dst 192.168.92.9 self permanent)",
      { action: "replace", object: fdb, previous: { kind: "fdb", mac: "02:55:55:55:55:55", device: "flannel.1", destination: "192.168.92.9" } },
      false,
    ],
    ["remove neigh 10.66.5.0 lladdr 02:55:55:55:55:55 dev flannel.1 permanent", { action: "remove", object: neigh }, false],
    ["create device flannel.1 (vxlan id 1, MAC 02:11:22:33:44:55)", { action: "create-device", device: "flannel.1", vni: 1, mac: "02:11:22:33:44:55" }, true],
    ["recreate device flannel.1: its VNI is 2, not 1", { action: "recreate-device", device: "flannel.1", reason: "its VNI is 2, not 1" }, true],
    ["set flannel.1 mtu 1450 (was 1500)", { action: "set-mtu", device: "flannel.1", mtu: 1450, was: 1500 }, false],
    ["set flannel.1 up", { action: "set-up", device: "flannel.1" }, false],
    ["turn tx checksum offload off on flannel.1 (Backend.TxChecksumOffload=false)", { action: "disable-tx-checksum", device: "flannel.1" }, false],
    ["add address 10.66.1.0/32 to flannel.1", { action: "add-address", device: "flannel.1", address: "10.66.1.0/32" }, true],
    ["remove address 10.66.9.0/32 from flannel.1", { action: "remove-address", device: "flannel.1", address: "10.66.9.0/32" }, true],
    ["add device wt0", { action: "add", object: { kind: "tun-device", device: "wt0" } }, false],
    ["add address 10.70.1.0/32 dev wt0", { action: "add", object: { kind: "tun-address", address: "10.70.1.0/32", device: "wt0" } }, true],
    ["remove address 10.70.9.0/32 dev wt0", { action: "remove", object: { kind: "tun-address", address: "10.70.9.0/32", device: "wt0" } }, true],
    ["remove route 10.71.0.0/16 dev wt0", { action: "remove", object: { kind: "tun-route", destination: "10.71.0.0/16", device: "wt0" } }, false],
    ["add peer 10.70.2.0/24 via 192.168.90.2 mac 0a:00:00:00:00:02", { action: "add", object: peer }, false],
  ])("%s (device change: %s)", (line, change, deviceChange) => {
    expect(describeReconcileChange(change)).toBe(line);
    // doctor --repair asked for --force on exactly these (it matched /^(create device|recreate device|add address|remove address) /).
    expect(isDeviceChange(change)).toBe(deviceChange);
  });

  it("formats a whole report, keeping the order", () => {
    expect(formatReconcileReport({ desired: [route, neigh], actual: [neigh], changes: [{ action: "set-up", device: "flannel.1" }] })).toEqual({
      desired: ["route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink", "neigh 10.66.5.0 lladdr 02:55:55:55:55:55 dev flannel.1 permanent"],
      actual: ["neigh 10.66.5.0 lladdr 02:55:55:55:55:55 dev flannel.1 permanent"],
      changes: ["set flannel.1 up"],
    });
  });
});

const route6: RouteObject = { kind: "route", destination: Ipv6Subnet.parse("fd66:0:0:5::/64"), gateway: "fd66:0:0:5::", device: "flannel-v6.1", onlink: true };
const neigh6: NeighbourObject = { kind: "neigh", address: "fd66:0:0:5::", mac: "02:55:55:55:56:55", device: "flannel-v6.1" };
const fdb6: FdbObject = { kind: "fdb", mac: "02:55:55:55:56:55", device: "flannel-v6.1", destination: "fd00:92::2" };

describe("IPv6 objects in reconcile reports (flannel-v6.<VNI>, host-gw IPv6 routes)", () => {
  it.each<[string, OwnedObject, string]>([
    ["IPv6 route", route6, "route fd66:0:0:5::/64 via fd66:0:0:5:: dev flannel-v6.1 onlink"],
    ["IPv6 neighbour", neigh6, "neigh fd66:0:0:5:: lladdr 02:55:55:55:56:55 dev flannel-v6.1 permanent"],
    ["FDB entry to an IPv6 underlay", fdb6, "fdb 02:55:55:55:56:55 dev flannel-v6.1 dst fd00:92::2 self permanent"],
  ])("%s", (_what, object, line) => {
    expect(describeOwnedObject(object)).toBe(line);
  });

  it("device-level lines for flannel-v6 (address /128, accept_ra)", () => {
    expect(describeReconcileChange({ action: "add-address", device: "flannel-v6.1", address: "fd66:0:0:5::/128" })).toBe("add address fd66:0:0:5::/128 to flannel-v6.1");
    expect(describeReconcileChange({ action: "disable-accept-ra", device: "flannel-v6.1", was: 1 })).toBe("set net.ipv6.conf.flannel-v6.1.accept_ra 0 (was 1)");
    expect(isDeviceChange({ action: "disable-accept-ra", device: "flannel-v6.1", was: 1 })).toBe(false);
  });

  it("counts objects and changes per family; device-wide changes count in neither", () => {
    const report = {
      desired: [route, neigh, fdb, route6, neigh6, fdb6],
      actual: [route, neigh, fdb, route6],
      changes: [
        { action: "add", object: neigh6 },
        { action: "add", object: fdb6 },
        { action: "add-address", device: "flannel-v6.1", address: "fd66:0:0:5::/128" },
        { action: "set-up", device: "flannel-v6.1" },
        { action: "remove", object: { kind: "tun-route", destination: "10.70.0.0/16", device: "wt0" } },
      ] satisfies ReconcileChange[],
    };
    expect(countByFamily(report)).toEqual({ ipv4: { desired: 3, actual: 3, changes: 1 }, ipv6: { desired: 3, actual: 1, changes: 3 } });
    expect(reconcileChangeFamily({ action: "set-mtu", device: "flannel-v6.1", mtu: 1430, was: 1450 })).toBeUndefined();
  });
});
