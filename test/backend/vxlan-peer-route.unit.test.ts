/**
 * vxlanPeerRoute: the userspace vxlan backend's decision for one peer lease, both families,
 * table-driven (no root, no engine).
 */
import { describe, expect, it } from "vitest";
import { vxlanPeerRoute } from "../../src/backend/vxlan-userspace/vxlan-userspace-backend.js";
import type { PeerRoute } from "../../src/engine/engine.js";
import { subnetKey } from "../../src/lease/subnet-key.js";
import type { Lease, LeaseAttrs } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

const SUBNET = Ipv4Subnet.parse("10.66.5.0/24");
const SUBNET6 = Ipv6Subnet.parse("fd66:0:0:5::/64");
const MAC = "0a:00:00:00:00:05";
const MAC6 = "0a:00:00:00:00:06";

function lease(ipv6Subnet: Ipv6Subnet | undefined, attrs: Partial<LeaseAttrs>): Lease {
  return {
    subnet: SUBNET,
    ipv6Subnet,
    attrs: { publicIP: "192.168.77.5", publicIPv6: null, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: MAC }, ...attrs },
    key: subnetKey("/coreos.com/network/subnets", { subnet: SUBNET, ipv6Subnet }),
    reservation: false,
  };
}

const dualStack = { publicIPv6: "fd77::5", backendV6Data: { VNI: 1, VtepMAC: MAC6 } };
const v4Route: PeerRoute = { subnet: SUBNET, publicIP: "192.168.77.5", vtepMac: MAC };

describe("vxlanPeerRoute", () => {
  it.each<[string, boolean, Lease, PeerRoute]>([
    ["an IPv4 lease on an IPv4 host", false, lease(undefined, {}), v4Route],
    ["a dual-stack lease on an IPv4-only host: its IPv6 half is ignored", false, lease(SUBNET6, dualStack), v4Route],
    ["a single-stack lease on a dual-stack host: IPv4 only", true, lease(undefined, {}), v4Route],
    [
      "a dual-stack lease on a dual-stack host: both halves, the IPv6 one from BackendV6Data",
      true,
      lease(SUBNET6, dualStack),
      { ...v4Route, ipv6: { subnet: SUBNET6, publicIPv6: "fd77::5", vtepMac: MAC6 } },
    ],
  ])("serves %s", (_what, ipv6, peer, expected) => {
    expect(vxlanPeerRoute(1, ipv6)(peer)).toEqual(expected);
  });

  it.each<[string, Partial<LeaseAttrs>, RegExp]>([
    ["no PublicIPv6", { ...dualStack, publicIPv6: null }, /has IPv6 subnet fd66:0:0:5::\/64 but no PublicIPv6/],
    ["a PublicIPv6 that is no IPv6 address", { ...dualStack, publicIPv6: "192.168.77.5" }, /PublicIPv6: "192.168.77.5" is not an IPv6 address/],
    ["no BackendV6Data", { publicIPv6: "fd77::5" }, /BackendV6Data: BackendData undefined is not an object/],
    ["a BackendV6Data MAC that is no MAC", { ...dualStack, backendV6Data: { VNI: 1, VtepMAC: "zz" } }, /BackendV6Data: BackendData.VtepMAC/],
    ["another VNI in BackendV6Data", { ...dualStack, backendV6Data: { VNI: 2, VtepMAC: MAC6 } }, /BackendV6Data VNI 2 differs from ours \(1\)/],
  ])("refuses a dual-stack lease with %s, naming the field and the lease", (_what, attrs, message) => {
    const verdict = vxlanPeerRoute(1, true)(lease(SUBNET6, attrs));
    expect(verdict).toMatchObject({ level: "warn" });
    const refused = (verdict as { refused: string }).refused;
    expect(refused).toMatch(message);
    expect(refused).toContain("10.66.5.0-24&fd66:0:0:5::-64");
  });
});
