import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { countFreeIpv6Subnets, fitsIpv6Config, freeIpv6Subnets, freeSubnetCount, leaseFitsConfig } from "../../src/lease/subnet-space.js";

const dual = parseNetworkConfig(
  '{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","IPv6SubnetMin":"fd66:0:0:10::","IPv6SubnetMax":"fd66:0:0:1f::","Backend":{"Type":"alloc"}}',
);
const ipv4Only = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');
const v6 = (text: string) => Ipv6Subnet.parse(text);

describe("fitsIpv6Config / leaseFitsConfig (flanneld's isIPv6SubnetConfigCompat)", () => {
  it.each<[string, string | undefined, boolean]>([
    ["in range", "fd66:0:0:10::/64", true],
    ["the last one", "fd66:0:0:1f::/64", true],
    ["below IPv6SubnetMin", "fd66:0:0:f::/64", false],
    ["above IPv6SubnetMax", "fd66:0:0:20::/64", false],
    ["another length", "fd66:0:0:10::/56", false],
    ["another network", "fd67:0:0:10::/64", false],
    ["none in a dual-stack network", undefined, false],
  ])("%s", (_name, text, fits) => {
    expect(fitsIpv6Config(text === undefined ? undefined : v6(text), dual)).toBe(fits);
  });

  it("an IPv4-only network fits only leases without an IPv6 subnet", () => {
    const subnet = Ipv4Subnet.parse("10.66.5.0/24");
    expect(leaseFitsConfig({ subnet }, ipv4Only)).toBe(true);
    expect(leaseFitsConfig({ subnet, ipv6Subnet: v6("fd66:0:0:10::/64") }, ipv4Only)).toBe(false);
    expect(leaseFitsConfig({ subnet, ipv6Subnet: v6("fd66:0:0:10::/64") }, dual)).toBe(true);
    expect(leaseFitsConfig({ subnet: Ipv4Subnet.parse("10.66.0.0/24"), ipv6Subnet: v6("fd66:0:0:10::/64") }, dual)).toBe(false);
  });
});

describe("freeIpv6Subnets and countFreeIpv6Subnets", () => {
  const ipv6 = dual.ipv6!;
  it.each<[string, string[], string[], bigint]>([
    ["nothing taken", [], ["fd66:0:0:10::/64", "fd66:0:0:11::/64", "fd66:0:0:12::/64"], 16n],
    ["same-length keys skipped", ["fd66:0:0:10::/64", "fd66:0:0:12::/64"], ["fd66:0:0:11::/64", "fd66:0:0:13::/64", "fd66:0:0:14::/64"], 14n],
    // A /60 covers 16 /64s: fd66:0:0:10:: … fd66:0:0:1f::, the whole range.
    ["a shorter key covering the range", ["fd66:0:0:10::/60"], [], 0n],
    // A /62 covers four; a longer /80 covers one; one outside the range nothing.
    ["odd-sized keys by overlap", ["fd66:0:0:14::/62", "fd66:0:0:10:1::/80", "fd66:0:0:40::/64"], ["fd66:0:0:11::/64", "fd66:0:0:12::/64", "fd66:0:0:13::/64"], 11n],
    ["a key counted once, whatever its duplicates", ["fd66:0:0:10::/64", "fd66:0:0:10::/64"], ["fd66:0:0:11::/64", "fd66:0:0:12::/64", "fd66:0:0:13::/64"], 15n],
  ])("%s", (_name, taken, firstFree, count) => {
    const occupied = taken.map(v6);
    expect(freeIpv6Subnets(ipv6, occupied, 3).map(String)).toEqual(firstFree);
    expect(countFreeIpv6Subnets(ipv6, occupied)).toBe(count);
  });

  it("counts a /32 of /64s without walking it", () => {
    const wide = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/32","Backend":{"Type":"alloc"}}').ipv6!;
    expect(countFreeIpv6Subnets(wide, [v6("fd66:0:5::/64")])).toBe(2n ** 32n - 2n);
    expect(freeIpv6Subnets(wide, [], 100)).toHaveLength(100);
  });

  it("freeSubnetCount: the scarcer family decides", () => {
    expect(freeSubnetCount(dual, [], [])).toBe(16);
    expect(freeSubnetCount(ipv4Only, [], [])).toBe(255);
    expect(freeSubnetCount(dual, [], [v6("fd66:0:0:10::/61")])).toBe(8);
  });
});
