import { describe, expect, it } from "vitest";
import { formatLeaseValue, parseLeaseValue } from "../../src/lease/lease-value.js";
import { parseSubnetKey, subnetKeyName, subnetKeyProblem, subnetsClaimedByKey } from "../../src/lease/subnet-key.js";

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
  ])("parses %s", (key, subnet, ipv6) => {
    const parts = parseSubnetKey(key);
    expect(parts?.subnet.toString()).toBe(subnet);
    expect(parts?.ipv6Subnet?.toString()).toBe(ipv6);
    expect(key.endsWith(subnetKeyName(parts!.subnet, parts!.ipv6Subnet))).toBe(true);
  });

  it.each(["/p/subnets/10.66.36.0", "/p/subnets/10.66.36.1-24", "/p/subnets/10.66.36.0-33", "/p/subnets/999.1.1.0-24", "/p/subnets/garbage", "/p/subnets/10.42.0.0-24&fc00:::1-64", "/p/subnets/10.42.0.0-24&fc00::-129", "/p/subnets/10.42.0.0-24&fc00::1-64"])(
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
  ])("%s", (key, v4, v6, problem) => {
    expect(parseSubnetKey(key)).toBeUndefined();
    const claimed = subnetsClaimedByKey(key);
    expect(claimed.subnet?.toString()).toBe(v4);
    expect(claimed.ipv6Subnet?.toString()).toBe(v6);
    expect(subnetKeyProblem(key)).toMatch(problem);
  });
});
