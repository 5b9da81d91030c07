import { describe, expect, it } from "vitest";
import { addLine, objectFamily, objectKey, removeLine, type KernelObject } from "../../src/kernel/objects.js";
import { onLinkDevice } from "../../src/kernel/on-link.js";
import type { RouteState } from "../../src/kernel/kernel.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

const route6: KernelObject = { kind: "route", destination: Ipv6Subnet.parse("fd66:0:0:2::/64"), gateway: "fd66:0:0:2::", device: "flannel-v6.1", onlink: true };

describe("kernel objects of either family", () => {
  it("IPv6 objects become the iproute2 lines flanneld's netlink calls amount to", () => {
    expect(addLine(route6)).toEqual({ tool: "ip", line: "route replace fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink" });
    expect(removeLine(route6)).toEqual({ tool: "ip", line: "route del fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1" });
    expect(addLine({ kind: "neigh", address: "fd66:0:0:2::", mac: "02:00:00:00:06:02", device: "flannel-v6.1" })).toEqual({
      tool: "ip",
      line: "neigh replace fd66:0:0:2:: lladdr 02:00:00:00:06:02 dev flannel-v6.1 nud permanent",
    });
    expect(addLine({ kind: "fdb", mac: "02:00:00:00:06:02", device: "flannel-v6.1", destination: "fd00:92::2" })).toEqual({
      tool: "bridge",
      line: "fdb replace 02:00:00:00:06:02 dev flannel-v6.1 dst fd00:92::2 self permanent",
    });
  });

  it("an IPv4 and an IPv6 object never share a key; families are told apart", () => {
    const route4: KernelObject = { kind: "route", destination: Ipv4Subnet.parse("10.66.2.0/24"), gateway: "10.66.2.0", device: "flannel.1", onlink: true };
    expect(objectKey(route4)).not.toBe(objectKey(route6));
    expect([route4, route6].map(objectFamily)).toEqual([4, 6]);
    expect(objectFamily({ kind: "fdb", mac: "02:00:00:00:06:02", device: "flannel-v6.1", destination: "fd00:92::2" })).toBe(6);
  });

  it("refuses values iproute2 would choke on, naming them", () => {
    expect(() => addLine({ ...route6, gateway: "10.66.2.0" } as KernelObject)).toThrow(/route fd66:0:0:2::\/64 gateway: "10\.66\.2\.0" is not an IPv6 address/);
    expect(() => addLine({ kind: "neigh", address: "fd66::2::1", mac: "02:00:00:00:06:02", device: "flannel-v6.1" })).toThrow(/neighbour address: "fd66::2::1" is not an IP address/);
    expect(() => addLine({ kind: "fdb", mac: "02:00:00:00:06:02", device: "flannel-v6.1", destination: "fe80::1%eth0" })).toThrow(/FDB 02:00:00:00:06:02 destination: "fe80::1%eth0"/);
  });
});

function route(destination: string, gateway: string | undefined, device: string): RouteState {
  const subnet = destination.includes(":") ? Ipv6Subnet.parse(destination) : Ipv4Subnet.parse(destination);
  return { kind: "route", destination: subnet, gateway, device, onlink: false, protocol: "kernel", type: "unicast", scope: "link" };
}

describe("onLinkDevice for IPv6 (DirectRouting, host-gw)", () => {
  const routes = [
    route("::/0", "fd00:1::fe", "eth0"),
    route("fd00:1::/64", undefined, "eth0"),
    route("fd00:2000::/32", "fd00:1::fe", "eth0"),
    route("fd66::/48", undefined, "flannel-v6.1"), // weft's own: excluded
  ];
  it.each<[string, string | undefined]>([
    ["fd00:1::7", "eth0"],
    ["fd00:2000::8", undefined],
    ["2001:db8::1", undefined],
    ["fd66:0:0:9::1", undefined],
  ])("%s is on-link via %s", (address, device) => {
    expect(onLinkDevice(address, routes, Ipv6Subnet.parse("fd66::/48"))).toBe(device);
  });
  it("an IPv4 address never matches IPv6 routes", () => {
    expect(onLinkDevice("10.0.0.1", [route("0.0.0.0/0", undefined, "eth0"), ...routes])).toBe("eth0");
    expect(onLinkDevice("10.0.0.1", routes)).toBeUndefined();
  });
});
