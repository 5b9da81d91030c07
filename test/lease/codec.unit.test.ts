import { describe, expect, it } from "vitest";
import { formatLeaseValue, parseLeaseValue } from "../../src/lease/lease-value.js";
import { describeSubnets, parseSubnetKey, primarySubnet, subnetKey, subnetKeyName, subnetKeyProblem, subnetsClaimedByKey } from "../../src/lease/subnet-key.js";
import { decodeLease } from "../../src/lease/stored-lease.js";
import { hostAddress } from "../../src/lease/host-address.js";

describe("lease value JSON (flannel-compat §1.4)", () => {
  it.each([
    ["udp", { publicIP: "192.168.77.1", publicIPv6: null }, '{"PublicIP":"192.168.77.1","PublicIPv6":null}'],
    [
      "vxlan",
      { publicIP: "192.168.77.1", publicIPv6: null, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "6a:96:90:47:79:a6" } },
      '{"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:96:90:47:79:a6"}}',
    ],
    ["host-gw", { publicIP: "192.168.77.2", publicIPv6: null, backendType: "host-gw" }, '{"PublicIP":"192.168.77.2","PublicIPv6":null,"BackendType":"host-gw"}'],
    [
      "dual-stack vxlan (both devices' VtepMACs)",
      {
        publicIP: "192.168.77.1",
        publicIPv6: "fd00:77::1",
        backendType: "vxlan",
        backendData: { VNI: 1, VtepMAC: "6a:96:90:47:79:a6" },
        backendV6Data: { VNI: 1, VtepMAC: "6a:96:90:47:79:a7" },
      },
      '{"PublicIP":"192.168.77.1","PublicIPv6":"fd00:77::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:96:90:47:79:a6"},' +
        '"BackendV6Data":{"VNI":1,"VtepMAC":"6a:96:90:47:79:a7"}}',
    ],
    ["dual-stack host-gw", { publicIP: "192.168.77.2", publicIPv6: "fd00:77::2", backendType: "host-gw" }, '{"PublicIP":"192.168.77.2","PublicIPv6":"fd00:77::2","BackendType":"host-gw"}'],
    // IPv6-only (EnableIPv4: false): flanneld's zero IP4 as PublicIP, no BackendData, only BackendV6Data (vxlan.go newSubnetAttrs).
    [
      "IPv6-only vxlan",
      { publicIP: "0.0.0.0", publicIPv6: "fd77::11", backendType: "vxlan", backendV6Data: { VNI: 1, VtepMAC: "5a:fb:51:d3:e0:c0" } },
      '{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::11","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"5a:fb:51:d3:e0:c0"}}',
    ],
    ["IPv6-only host-gw", { publicIP: "0.0.0.0", publicIPv6: "fd77::12", backendType: "host-gw" }, '{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::12","BackendType":"host-gw"}'],
  ])("%s is byte-compatible with flanneld and round-trips", (_name, attrs, json) => {
    expect(formatLeaseValue(attrs)).toBe(json);
    expect(parseLeaseValue(json)).toEqual(attrs);
  });

  it("reads keys case-insensitively, as Go's encoding/json does", () => {
    expect(parseLeaseValue('{"publicip":"10.0.0.1","backendtype":"vxlan","backenddata":{"VNI":1}}')).toEqual({
      publicIP: "10.0.0.1",
      publicIPv6: null,
      backendType: "vxlan",
      backendData: { VNI: 1 },
    });
  });

  it.each([
    ["nope", /value is not JSON/],
    ["[1]", /value is not a JSON object/],
    ['{"PublicIPv6":null}', /PublicIP undefined is not an IPv4 address/],
    ['{"PublicIP":"10.0.0.300"}', /PublicIP "10\.0\.0\.300" is not an IPv4 address/],
    ['{"PublicIP":"10.0.0.1","BackendType":3}', /BackendType 3 is not a string/],
    ['{"PublicIP":"10.0.0.1","PublicIPv6":"fd00::zz"}', /PublicIPv6 "fd00::zz" is not an IPv6 address/],
    ['{"PublicIP":"10.0.0.1","PublicIPv6":"10.0.0.2"}', /PublicIPv6 "10\.0\.0\.2" is not an IPv6 address/],
    ['{"PublicIP":"10.0.0.1","PublicIPv6":"fe80::1%eth0"}', /PublicIPv6 "fe80::1%eth0" is not an IPv6 address/],
    ['{"PublicIP":"10.0.0.1","PublicIPv6":6}', /PublicIPv6 6 is not a string or null/],
  ])("rejects %s", (text, message) => {
    expect(() => parseLeaseValue(text)).toThrow(message);
  });
});

describe("subnet keys (flannel-compat §1.1)", () => {
  it.each([
    ["/coreos.com/network/subnets/10.66.36.0-24", "10.66.36.0/24", undefined],
    ["/x/subnets/10.42.0.0-24&fc00::-64", "10.42.0.0/24", "fc00::/64"],
    ["/x/subnets/10.42.0.0-24&fd66:0:0:6::-64", "10.42.0.0/24", "fd66:0:0:6::/64"],
    // IPv6-only: flanneld's MakeSubnetKey writes its empty IP4Net as 0.0.0.0-0, which names no subnet.
    ["/coreos.com/network/subnets/0.0.0.0-0&fd66:0:0:6::-64", undefined, "fd66:0:0:6::/64"],
    ["/x/subnets/0.0.0.0-0&fd66:0:0:ab00::-56", undefined, "fd66:0:0:ab00::/56"],
  ])("parses %s", (key, subnet, ipv6) => {
    const parts = parseSubnetKey(key);
    expect(parts?.subnet?.toString()).toBe(subnet);
    expect(parts?.ipv6Subnet?.toString()).toBe(ipv6);
    expect(key.endsWith(subnetKeyName(parts!))).toBe(true);
  });

  it("reads 0.0.0.0-00 as flanneld does (its empty IP4Net, so IPv6-only; found by the fuzz walk), and names it 0.0.0.0-0", () => {
    const parts = parseSubnetKey("/x/subnets/0.0.0.0-00&fd66:0:0:6::-64");
    expect(parts?.subnet).toBeUndefined();
    expect(subnetKeyName(parts!)).toBe("0.0.0.0-0&fd66:0:0:6::-64");
    expect(subnetsClaimedByKey("/x/subnets/0.0.0.0-00&fd66:0:0:6::-64").subnet).toBeUndefined();
  });

  it.each(["/p/subnets/10.66.36.0", "/p/subnets/10.66.36.1-24", "/p/subnets/10.66.36.0-33", "/p/subnets/999.1.1.0-24", "/p/subnets/garbage", "/p/subnets/10.42.0.0-24&fc00:::1-64", "/p/subnets/10.42.0.0-24&fc00::-129", "/p/subnets/10.42.0.0-24&fc00::1-64", "/p/subnets/0.0.0.0-0", "/p/subnets/0.0.0.0-0&fc00::1-64", "/p/subnets/0.0.0.0-0&zz-64"])(
    "rejects %s",
    (key) => {
      expect(parseSubnetKey(key)).toBeUndefined();
    },
  );
});

describe("malformed subnet keys: what they still claim, and what is wrong", () => {
  it.each([
    ["/p/subnets/10.66.5.0-24&fd66::zz-64", "10.66.5.0/24", undefined, /its IPv6 part "fd66::zz-64" is not ipv6-len/],
    ["/p/subnets/10.66.5.0-24&fd66:0:0:5::1-64", "10.66.5.0/24", "fd66:0:0:5::/64", /its IPv6 part "fd66:0:0:5::1-64" has host bits set \(fd66:0:0:5::\/64 would be fd66:0:0:5::-64\)/],
    ["/p/subnets/10.66.5.1-24&fd66:0:0:5::-64", "10.66.5.0/24", "fd66:0:0:5::/64", /its IPv4 part "10\.66\.5\.1-24" has host bits set/],
    ["/p/subnets/10.66.5.0-99&fd66:0:0:5::-64", undefined, "fd66:0:0:5::/64", /its IPv4 part "10\.66\.5\.0-99" is not a\.b\.c\.d-len/],
    ["/p/subnets/garbage", undefined, undefined, /its IPv4 part "garbage" is not a\.b\.c\.d-len .*10\.66\.52\.0-24&fd66:0:0:6::-64/],
    // 0.0.0.0-0 claims no IPv4 subnet (as a /0 it would cover every one).
    ["/p/subnets/0.0.0.0-0", undefined, undefined, /0\.0\.0\.0-0 names no IPv4 subnet and the key has no IPv6 part .*0\.0\.0\.0-0&ipv6-len for IPv6 only/],
    ["/p/subnets/0.0.0.0-0&fd66:0:0:5::1-64", undefined, "fd66:0:0:5::/64", /its IPv6 part "fd66:0:0:5::1-64" has host bits set/],
    ["/p/subnets/0.0.0.0-0&fd66::zz-64", undefined, undefined, /its IPv6 part "fd66::zz-64" is not ipv6-len/],
  ])("%s", (key, v4, v6, problem) => {
    expect(parseSubnetKey(key)).toBeUndefined();
    const claimed = subnetsClaimedByKey(key);
    expect(claimed.subnet?.toString()).toBe(v4);
    expect(claimed.ipv6Subnet?.toString()).toBe(v6);
    expect(subnetKeyProblem(key)).toMatch(problem);
  });
});

describe("IPv6-only leases as flanneld writes them (key 0.0.0.0-0&…, PublicIP 0.0.0.0)", () => {
  const key = "/coreos.com/network/subnets/0.0.0.0-0&fd66:0:0:6::-64";
  const value = '{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::11","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"5a:fb:51:d3:e0:c0"}}';

  it("decodes to a lease with no IPv4 subnet, known by its PublicIPv6, and writes back the same key and value", () => {
    const lease = decodeLease({ key, value, leaseId: "7587", modRevision: "9" });
    expect(lease.subnet).toBeUndefined();
    expect(lease.ipv6Subnet?.toString()).toBe("fd66:0:0:6::/64");
    expect(describeSubnets(lease)).toBe("fd66:0:0:6::/64");
    expect(primarySubnet(lease).toString()).toBe("fd66:0:0:6::/64");
    expect(hostAddress(lease.attrs)).toBe("fd77::11");
    expect(subnetKey("/coreos.com/network/subnets/", lease)).toBe(key);
    expect(formatLeaseValue(lease.attrs)).toBe(value);
    expect(subnetsClaimedByKey(key).subnet).toBeUndefined();
    expect(subnetsClaimedByKey(key).ipv6Subnet?.equals(lease.ipv6Subnet!)).toBe(true);
  });

  it("a dual-stack or IPv4 lease is still known by its PublicIP", () => {
    expect(hostAddress({ publicIP: "192.168.77.1", publicIPv6: "fd77::1" })).toBe("192.168.77.1");
    // PublicIPv6 compared canonically (flanneld prints Go's RFC 5952 form).
    expect(hostAddress({ publicIP: "0.0.0.0", publicIPv6: "FD77:0:0::11" })).toBe("fd77::11");
    expect(hostAddress({ publicIP: "0.0.0.0", publicIPv6: null })).toBeUndefined();
  });

  it.each([
    ['{"PublicIP":"0.0.0.0","PublicIPv6":null,"BackendType":"vxlan"}', /0\.0\.0\.0-0&fd66:0:0:6::-64: an IPv6-only lease \(no IPv4 subnet in its key\) must advertise a PublicIPv6/],
    ['{"PublicIP":"0.0.0.0","BackendType":"host-gw"}', /must advertise a PublicIPv6, and its value has none/],
    ['{"PublicIP":"192.168.77.1","PublicIPv6":"fd77::1"}', /an IPv6-only lease says PublicIP 0\.0\.0\.0 \(flanneld's zero address\), not 192\.168\.77\.1/],
    ['{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::zz"}', /0\.0\.0\.0-0&fd66:0:0:6::-64: PublicIPv6 "fd77::zz" is not an IPv6 address/],
    ['{"PublicIPv6":"fd77::11"}', /0\.0\.0\.0-0&fd66:0:0:6::-64: PublicIP undefined is not an IPv4 address/],
  ])("refuses the malformed IPv6-only value %s naming the key", (bad, message) => {
    expect(() => decodeLease({ key, value: bad, leaseId: "7587", modRevision: "9" })).toThrow(message);
    // Still claimed: acquisition never hands its IPv6 subnet to another host.
    expect(subnetsClaimedByKey(key).ipv6Subnet?.toString()).toBe("fd66:0:0:6::/64");
  });
});
