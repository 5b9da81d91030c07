import { describe, expect, it } from "vitest";
import { Ipv6Subnet, formatIpv6, parseIpv6, tryParseIpv6 } from "../../src/net/ipv6.js";

// Node's URL parser canonicalises an IPv6 host with the same RFC 5952 rules Go's net.IP.String()
// follows (longest run of ≥ 2 zero groups, the first on a tie, lower case): an independent oracle.
const canonical = (text: string) => new URL(`http://[${text}]/`).hostname.slice(1, -1);

describe("IPv6 addresses", () => {
  it.each([
    ["fd66:0:0:6::", "fd66:0:0:6::"],
    ["FD66:0000:0000:0006:0000:0000:0000:0000", "fd66:0:0:6::"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longer run
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of two equal runs
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
  ])("%s prints as %s (and as Node's URL does)", (input, printed) => {
    expect(formatIpv6(parseIpv6(input))).toBe(printed);
    expect(formatIpv6(parseIpv6(input))).toBe(canonical(input));
  });

  it("agrees with the URL oracle on random addresses with zero runs", () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const words = Array.from({ length: 8 }, () => (next() % 3 === 0 ? next() % 65536 : 0));
      const text = words.map((word) => word.toString(16)).join(":");
      expect(formatIpv6(parseIpv6(text)), text).toBe(canonical(text));
    }
  });

  it.each(["", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "fe80::1%eth0", "::1.2.3", "::256.1.1.1", "::01.2.3.4", "1:2:3:4:5:6:7::8:9", "10.0.0.1"])(
    "refuses %j",
    (text) => {
      expect(tryParseIpv6(text)).toBeUndefined();
    },
  );

  it("names the field it could not parse", () => {
    expect(() => parseIpv6("fd00::g", "PublicIPv6")).toThrow('PublicIPv6: "fd00::g" is not an IPv6 address');
  });
});

describe("IPv6 subnets", () => {
  it("masks host bits and prints flannel's key form", () => {
    const subnet = Ipv6Subnet.parse("fd66:0:0:6::1/64");
    expect(subnet.toString()).toBe("fd66:0:0:6::/64");
    expect(subnet.size).toBe(2n ** 64n);
    expect(formatIpv6(subnet.addressAt(1))).toBe("fd66:0:0:6::1");
    expect(formatIpv6(subnet.last)).toBe("fd66::6:ffff:ffff:ffff:ffff");
  });

  it("contains, overlaps and equals", () => {
    const network = Ipv6Subnet.parse("fd66::/48");
    const inside = Ipv6Subnet.parse("fd66:0:0:6::/64");
    const outside = Ipv6Subnet.parse("fd67::/64");
    expect(network.contains(inside)).toBe(true);
    expect(inside.contains(network)).toBe(false);
    expect(inside.overlaps(network)).toBe(true);
    expect(outside.overlaps(network)).toBe(false);
    expect(inside.equals(Ipv6Subnet.parse("fd66:0:0:6:0::/64"))).toBe(true);
    expect(Ipv6Subnet.parse("::/0").contains(outside)).toBe(true);
    expect(Ipv6Subnet.parse("fd66::1/128").containsAddress(parseIpv6("fd66::1"))).toBe(true);
  });

  it.each(["fd66::/129", "fd66::", "fd66::/x", "10.0.0.0/8", "fd66::/-1"])("refuses %j", (text) => {
    expect(Ipv6Subnet.tryParse(text)).toBeUndefined();
    expect(() => Ipv6Subnet.parse(text, "IPv6Network")).toThrow(`IPv6Network: "${text}" is not an IPv6 CIDR`);
  });
});
