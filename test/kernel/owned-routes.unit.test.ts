import { describe, expect, it } from "vitest";
import type { RouteState } from "../../src/kernel/kernel.js";
import { ownedRoutes, type RouteScope } from "../../src/kernel/owned-routes.js";
import { describeObject } from "../../src/kernel/objects.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

function route(text: string, extra: Partial<RouteState> = {}): RouteState {
  const [destination, ...rest] = text.split(" ");
  const via = rest.indexOf("via");
  const dev = rest.indexOf("dev");
  return {
    kind: "route",
    destination: (destination as string).includes(":") ? Ipv6Subnet.parse(destination as string) : Ipv4Subnet.parse(destination as string),
    gateway: via >= 0 ? rest[via + 1] : undefined,
    device: rest[dev + 1] as string,
    onlink: rest.includes("onlink"),
    protocol: "boot",
    type: "unicast",
    scope: "global",
    ...extra,
  };
}

const vxlan: RouteScope = {
  network: Ipv4Subnet.parse("10.66.0.0/16"),
  ownSubnet: Ipv4Subnet.parse("10.66.1.0/24"),
  overlayDevices: ["flannel.1"],
  underlayDevices: ["eth0"],
};
const hostGw: RouteScope = { ...vxlan, overlayDevices: [] };
const vxlanV6: RouteScope = {
  network: Ipv6Subnet.parse("fd66::/48"),
  ownSubnet: Ipv6Subnet.parse("fd66:0:0:1::/64"),
  overlayDevices: ["flannel-v6.1"],
  underlayDevices: ["eth0"],
};

describe("ownedRoutes", () => {
  it.each<[string, RouteScope, RouteState, boolean]>([
    ["a peer route on flannel.1", vxlan, route("10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink"), true],
    ["a DirectRouting/host-gw peer route", hostGw, route("10.66.2.0/24 via 192.168.1.2 dev eth0"), true],
    ["the own subnet via flannel.1 (a peer's route left from before our lease moved)", vxlan, route("10.66.1.0/24 via 10.66.1.0 dev flannel.1 onlink"), true],
    ["the own subnet via a gateway on the external interface", hostGw, route("10.66.1.0/24 via 192.168.1.9 dev eth0"), true],
    ["docker0's connected route for the own subnet", vxlan, route("10.66.1.0/24 dev docker0", { protocol: "kernel", scope: "link" }), false],
    ["a static own-subnet route on docker0", hostGw, route("10.66.1.0/24 dev docker0", { protocol: "static" }), false],
    ["the own subnet without gateway on the external interface", hostGw, route("10.66.1.0/24 dev eth0", { protocol: "static" }), false],
    ["a kernel-made route", hostGw, route("10.66.7.0/24 dev eth0", { protocol: "kernel" }), false],
    ["a route outside the Network", hostGw, route("172.16.0.0/16 via 192.168.1.1 dev eth0"), false],
    ["a route on another device", vxlan, route("10.66.3.0/24 via 10.0.0.1 dev wg0"), false],
    ["a non-unicast route", vxlan, route("10.66.4.0/24 dev flannel.1", { type: "blackhole" }), false],
    ["an IPv6 peer route on flannel-v6.1", vxlanV6, route("fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink"), true],
    ["an IPv6 DirectRouting/host-gw route", vxlanV6, route("fd66:0:0:2::/64 via fd00:1::2 dev eth0"), true],
    ["the own IPv6 subnet via flannel-v6.1 (stale)", vxlanV6, route("fd66:0:0:1::/64 via fd66:0:0:1:: dev flannel-v6.1 onlink"), true],
    ["the device's own /128 (kernel-made)", vxlanV6, route("fd66:0:0:1::/128 dev flannel-v6.1", { protocol: "kernel" }), false],
    ["an IPv6 route outside IPv6Network", vxlanV6, route("fd99::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink"), false],
    ["an IPv4 route against an IPv6 scope", vxlanV6, route("10.66.2.0/24 via 10.66.2.0 dev flannel-v6.1 onlink"), false],
    ["an IPv6 route against an IPv4 scope", vxlan, route("fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel.1 onlink"), false],
  ])("%s: owned = %s", (_what, scope, candidate, owned) => {
    expect(ownedRoutes([candidate], scope).map(describeObject)).toEqual(owned ? [describeObject(candidate)] : []);
  });
});
