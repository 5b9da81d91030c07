import { describe, expect, it } from "vitest";
import { formatLeaseValue, parseLeaseValue } from "../../src/lease/lease-value.js";
import { parseSubnetKey, subnetKeyName } from "../../src/lease/subnet-key.js";

describe("lease value JSON (flannel-compat §1.4)", () => {
  it.each([
    ["udp", { publicIP: "192.168.77.1", publicIPv6: null }, '{"PublicIP":"192.168.77.1","PublicIPv6":null}'],
    [
      "vxlan",
      { publicIP: "192.168.77.1", publicIPv6: null, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "6a:96:90:47:79:a6" } },
      '{"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:96:90:47:79:a6"}}',
    ],
    ["host-gw", { publicIP: "192.168.77.2", publicIPv6: null, backendType: "host-gw" }, '{"PublicIP":"192.168.77.2","PublicIPv6":null,"BackendType":"host-gw"}'],
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
