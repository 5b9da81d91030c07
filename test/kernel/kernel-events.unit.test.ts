import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { concernsOverlay, isWeftDevice, parseMonitorLine, type OverlayScope } from "../../src/kernel/kernel-events.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

/**
 * fixtures/ip-monitor-label.txt: what `ip -o monitor label link address route neigh` (iproute2 6.1)
 * printed in a namespace while a veth underlay evu0 (192.168.77.1/24, fd77::1/64), flannel.1 with a
 * peer's neighbour, FDB entry and onlink route, a host-gw style route via evu0 and a TUN flannel0
 * were set up and then partly deleted.
 */
const captured = readFileSync(new URL("fixtures/ip-monitor-label.txt", import.meta.url), "utf8").split("\n").filter(Boolean);
const scope: OverlayScope = { underlay: "evu0", networks: [Ipv4Subnet.parse("10.244.0.0/16"), Ipv6Subnet.parse("fd66::/48")] };
/** The first captured line matching `pattern` (interface indexes are left out of the patterns). */
const line = (pattern: RegExp) => {
  const found = captured.find((text) => pattern.test(text));
  if (!found) throw new Error(`no captured line matches ${pattern}`);
  return found;
};

describe("ip monitor lines", () => {
  it("parses every captured line", () => {
    for (const text of captured) expect(parseMonitorLine(text), text).toBeDefined();
  });

  it("reads object, deletion, device and target", () => {
    expect(parseMonitorLine(line(/^\[LINK\]Deleted \d+: flannel0:/))).toMatchObject({ object: "link", deleted: true, device: "flannel0" });
    expect(parseMonitorLine(line(/^\[LINK\]\d+: evu0@evu1:/))).toMatchObject({ object: "link", deleted: false, device: "evu0" });
    expect(parseMonitorLine(line(/^\[ADDR\]Deleted \d+: flannel\.1/))).toMatchObject({ object: "address", deleted: true, device: "flannel.1", target: "10.244.1.0/32" });
    expect(parseMonitorLine(line(/^\[ADDR\]\d+: evu0    inet6/))).toMatchObject({ object: "address", device: "evu0", target: "fd77::1/64", dynamic: false });
    expect(parseMonitorLine(line(/^\[ROUTE\]10\.244\.2\.0\/24/))).toMatchObject({ object: "route", device: "flannel.1", target: "10.244.2.0/24", via: true });
    expect(parseMonitorLine(line(/^\[ROUTE\]local 192\.168\.77\.1/))).toMatchObject({ object: "route", device: "evu0", target: "192.168.77.1", proto: "kernel", via: false });
    expect(parseMonitorLine(line(/^\[ROUTE\]Deleted 10\.244\.3\.0\/24/))).toMatchObject({ deleted: true, device: "evu0", via: true });
    // The vxlan FDB entry arrives as a neighbour of flannel.1 with the peer's public address.
    expect(parseMonitorLine(line(/^\[NEIGH\]192\.168\.77\.2 dev flannel\.1/))).toMatchObject({ object: "neigh", device: "flannel.1", target: "192.168.77.2", permanent: true, resolved: true });
    expect(parseMonitorLine(line(/^\[NEIGH\]10\.244\.2\.0 dev flannel\.1 FAILED/))).toMatchObject({ deleted: false, permanent: false, resolved: false });
    expect(parseMonitorLine(line(/^\[NEIGH\]Deleted 10\.244\.2\.0 dev flannel\.1 FAILED/))).toMatchObject({ deleted: true });
    expect(parseMonitorLine(line(/^\[ROUTE\]Deleted fd66:2::\/64/))).toMatchObject({ deleted: true, device: "flannel-v6.1", target: "fd66:2::/64", via: true });
    expect(parseMonitorLine(line(/^\[NEIGH\]Deleted fd77::2 dev flannel-v6\.1/))).toMatchObject({ deleted: true, device: "flannel-v6.1", target: "fd77::2", permanent: true });
  });

  it("ignores what is not a labelled line of the four objects", () => {
    for (const text of ["", "Deleted 7: flannel.1: <BROADCAST>", "[NSID]current 0", "[LINK]garbage", "[ADDR]nothing here"]) expect(parseMonitorLine(text), text).toBeUndefined();
  });
});

describe("which kernel events concern the overlay", () => {
  const concerns = (text: string) => {
    const event = parseMonitorLine(text);
    if (!event) throw new Error(`unparsed: ${text}`);
    return concernsOverlay(event, scope);
  };

  it("every deletion of weft's state and of the underlay's links, addresses and routes does", () => {
    const deletions = captured.filter((entry) => /Deleted/.test(entry) && /flannel|evu0/.test(entry) && !/^\[NEIGH\].* dev evu0 /.test(entry));
    expect(deletions.length).toBeGreaterThan(20);
    for (const text of deletions) expect(concerns(text), text).toBe(true);
  });

  it("weft's devices: links, addresses, routes, permanent or resolved neighbours", () => {
    for (const pattern of [
      /^\[LINK\]\d+: flannel\.1:/, /^\[ADDR\]\d+: flannel\.1 /, /^\[ROUTE\]10\.244\.2\.0\/24/, /^\[NEIGH\]10\.244\.2\.0 dev flannel\.1 lladdr/,
      /^\[NEIGH\]192\.168\.77\.2 dev flannel\.1/, /^\[ADDR\]\d+: flannel0/, /^\[ROUTE\]10\.244\.0\.0\/16 dev flannel0/,
      /^\[ADDR\]\d+: flannel-v6\.1 +inet6 fd66:1::\/128/, /^\[NEIGH\]fd66:2:: dev flannel-v6\.1 lladdr/, /^\[NEIGH\]fd77::2 dev flannel-v6\.1/,
      /^\[ROUTE\]fd66:2::\/64 via fd66:2:: dev flannel-v6\.1/,
    ]) {
      expect(concerns(line(pattern)), String(pattern)).toBe(true);
    }
    // Traffic to an unresolved neighbour: the kernel's own churn, not weft's state.
    expect(concerns(line(/^\[NEIGH\]10\.244\.2\.0 dev flannel\.1 FAILED/))).toBe(false);
  });

  it("the underlay: links, addresses, on-link routes; not router-advertisement refreshes, gateways' neighbours or other devices", () => {
    expect(concerns(line(/^\[LINK\]\d+: evu0@evu1:/))).toBe(true);
    expect(concerns(line(/^\[ADDR\]\d+: evu0    inet /))).toBe(true);
    expect(concerns(line(/^\[ROUTE\]192\.168\.77\.0\/24 dev evu0/))).toBe(true);
    expect(concerns(line(/^\[ROUTE\]10\.244\.3\.0\/24 via 192\.168\.77\.3 dev evu0/))).toBe(true); // into the Network
    expect(concerns("[ADDR]3: evu0    inet6 2001:db8::c850:a0ff:feb7:bfee/64 scope global dynamic mngtmpaddr \       valid_lft 86396sec preferred_lft 14396sec")).toBe(false);
    expect(concerns("[ROUTE]default via fe80::1 dev evu0 proto ra metric 1024 expires 1796sec hoplimit 64 pref medium")).toBe(false);
    expect(concerns("[ROUTE]2001:db8::/64 dev evu0 proto ra metric 256 expires 86396sec pref medium")).toBe(false);
    expect(concerns("[NEIGH]192.168.77.254 dev evu0 lladdr 52:54:00:12:34:56 STALE")).toBe(false);
    expect(concerns(line(/^\[LINK\]\d+: evu1@NONE:/))).toBe(false);
    expect(concerns(line(/^\[NEIGH\]Deleted ff02::.* dev evu0 /))).toBe(false); // the underlay's multicast ND entries
    expect(concerns(line(/^\[ROUTE\]fe80::\/64 dev evu1/))).toBe(false);
    expect(concerns("[NEIGH]Deleted 10.244.1.7 dev docker0 lladdr 02:42:0a:f4:01:07 STALE")).toBe(false);
    // A route into the Network elsewhere (docker0's own subnet) is looked at: it may shadow a peer's.
    expect(concerns("[ROUTE]10.244.1.0/24 dev docker0 proto kernel scope link src 10.244.1.1 linkdown")).toBe(true);
    expect(concerns("[ROUTE]fd66:0:0:2::/64 dev eth9 metric 1024 pref medium")).toBe(true);
  });

  it("names weft's devices only, not a stopped container's veth", () => {
    for (const name of ["flannel.1", "flannel0", "flannel-wg", "flannel-v6.1", "weft.1"]) expect(isWeftDevice(name)).toBe(true);
    for (const name of ["veth5760f13", "docker0", "eth1", "flannelx", "weftbr"]) expect(isWeftDevice(name)).toBe(false);
  });
});
