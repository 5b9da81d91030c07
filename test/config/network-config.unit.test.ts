import { describe, expect, it } from "vitest";
import { describeNetworkConfig, ignoredFieldsNote, parseNetworkConfig, primaryNetwork } from "../../src/config/network-config.js";
import { formatIpv4 } from "../../src/net/ipv4.js";
import { formatIpv6 } from "../../src/net/ipv6.js";

describe("parseNetworkConfig (flannel-compat §1.2)", () => {
  it.each([
    // [config, network, subnetLen, subnetMin, subnetMax, backend]
    ['{"Network":"10.66.0.0/16"}', "10.66.0.0/16", 24, "10.66.1.0", "10.66.255.0", "udp"],
    ['{"network":"10.66.1.0/16","backend":{"type":"VXLAN","vni":4}}', "10.66.0.0/16", 24, "10.66.1.0", "10.66.255.0", "vxlan"],
    ['{"Network":"10.0.0.0/8","SubnetLen":20}', "10.0.0.0/8", 20, "10.0.16.0", "10.255.240.0", "udp"],
    ['{"Network":"10.66.0.0/24"}', "10.66.0.0/24", 26, "10.66.0.64", "10.66.0.192", "udp"],
    ['{"Network":"10.66.0.0/16","SubnetMin":"10.66.96.0","SubnetMax":"10.66.96.0","Backend":{"Type":"host-gw"}}', "10.66.0.0/16", 24, "10.66.96.0", "10.66.96.0", "host-gw"],
  ])("%s", (text, network, subnetLen, min, max, backend) => {
    const config = parseNetworkConfig(text);
    expect(config.ipv4!.network.toString()).toBe(network);
    expect(config.ipv4!.subnetLen).toBe(subnetLen);
    expect(formatIpv4(config.ipv4!.subnetMin)).toBe(min);
    expect(formatIpv4(config.ipv4!.subnetMax)).toBe(max);
    expect(config.backend.type).toBe(backend);
  });

  it.each([
    ["{", /not valid JSON/],
    ["[]", /must be a JSON object/],
    ["{}", /^Network: missing/],
    ['{"Network":"10.66.0.0"}', /^Network: "10\.66\.0\.0" is not an IPv4 CIDR/],
    ['{"Network":"fc00::/64"}', /^Network: "fc00::\/64" is not an IPv4 CIDR/],
    ['{"Network":"10.66.0.0/29"}', /^Network: 10\.66\.0\.0\/29 is too small/],
    ['{"Network":"10.66.0.0/16","SubnetLen":17}', /^SubnetLen: 17 leaves fewer than four subnets/],
    ['{"Network":"10.66.0.0/16","SubnetLen":31}', /^SubnetLen: 31 is longer than \/30/],
    ['{"Network":"10.66.0.0/16","SubnetLen":"24"}', /^SubnetLen: "24" is not an integer/],
    ['{"Network":"10.66.0.0/16","SubnetMin":"10.67.0.0"}', /^SubnetMin: 10\.67\.0\.0 is outside Network/],
    ['{"Network":"10.66.0.0/16","SubnetMax":"10.66.3.7"}', /^SubnetMax: 10\.66\.3\.7 is not on a \/24 boundary/],
    ['{"Network":"10.66.0.0/16","SubnetMin":"10.66.9.0","SubnetMax":"10.66.3.0"}', /^SubnetMin: 10\.66\.9\.0 is above SubnetMax/],
    ['{"Network":"10.66.0.0/16","Backend":"vxlan"}', /^Backend: "vxlan" is not an object/],
    ['{"Network":"10.66.0.0/16","Backend":{"Type":7}}', /^Backend\.Type: 7 is not a string/],
    // flanneld: "none defined stack" when neither family is on.
    ['{"Network":"10.66.0.0/16","EnableIPv4":false}', /^EnableIPv4: false, and EnableIPv6 is not true: the network would lease no subnets/],
    ['{"EnableIPv4":false,"EnableIPv6":false,"IPv6Network":"fd66::/48"}', /^EnableIPv4: false, and EnableIPv6 is not true/],
    ['{"EnableIPv4":false,"EnableIPv6":true}', /^IPv6Network: missing, but EnableIPv6 is true/],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"10.66.0.0/16"}', /^IPv6Network: "10\.66\.0\.0\/16" is not an IPv6 CIDR/],
    ['{"EnableIPv4":"no","EnableIPv6":true,"IPv6Network":"fd66::/48"}', /^EnableIPv4: "no" is not true or false/],
    // flanneld decodes Network (an IP4Net) even when IPv4 is off, so a non-IPv4 one fails there too.
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Network":"fd00::/8"}', /^Network \(unused: EnableIPv4 is false\): "fd00::\/8" is not an IPv4 CIDR/],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","SubnetMin":"x"}', /^SubnetMin \(unused: EnableIPv4 is false\): "x" is not an IPv4 address/],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","SubnetLen":"24"}', /^SubnetLen: "24" is not an integer/],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","IPv6SubnetLen":40}', /^IPv6SubnetLen: 40 must be between \/50 and \/126/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true}', /^IPv6Network: missing/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":"yes"}', /^EnableIPv6: "yes" is not true or false/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"zz::/48"}', /^IPv6Network: "zz::\/48" is not an IPv6 CIDR/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/125"}', /^IPv6Network: fc00::\/125 is too small/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetLen":127}', /^IPv6SubnetLen: 127 must be between \/50 and \/126/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMin":"fc00:::1"}', /^IPv6SubnetMin: "fc00:::1" is not an IPv6 address/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMin":"fd00::"}', /^IPv6SubnetMin: fd00:: is outside IPv6Network fc00::\/48/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMax":"fc00:0:0:1::1"}', /^IPv6SubnetMax: fc00:0:0:1::1 is not on a \/64 boundary/],
    ['{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMin":"fc00:0:0:9::","IPv6SubnetMax":"fc00:0:0:8::"}', /^IPv6SubnetMin: fc00:0:0:9:: is above IPv6SubnetMax fc00:0:0:8::/],
  ])("rejects %s naming the field", (text, message) => {
    expect(() => parseNetworkConfig(text)).toThrow(message);
  });

  it("parses dual-stack settings", () => {
    const config = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48"}');
    expect(config.ipv6?.network.toString()).toBe("fc00::/48");
    expect(config.ipv6?.subnetLen).toBe(64);
    // flannel's defaults: the second subnet up to the last one.
    expect(formatIpv6(config.ipv6!.subnetMin)).toBe("fc00:0:0:1::");
    expect(formatIpv6(config.ipv6!.subnetMax)).toBe("fc00:0:0:ffff::");
    const small = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/120"}');
    expect(small.ipv6?.subnetLen).toBe(122);
  });

  it("parses an IPv6-only network (EnableIPv4: false) with no IPv4 half", () => {
    const config = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');
    expect(config.enableIPv4).toBe(false);
    expect(config.ipv4).toBeUndefined();
    expect(config.enableIPv6).toBe(true);
    expect(config.ipv6?.network.toString()).toBe("fd66::/48");
    expect(config.ipv6?.subnetLen).toBe(64);
    expect(formatIpv6(config.ipv6!.subnetMin)).toBe("fd66:0:0:1::");
    expect(formatIpv6(config.ipv6!.subnetMax)).toBe("fd66:0:0:ffff::");
    expect(config.ignoredFields).toEqual([]);
    expect(primaryNetwork(config).toString()).toBe("fd66::/48");
    expect(describeNetworkConfig(config)).toBe("IPv6Network fd66::/48, /64 subnets (IPv6 only)");
  });

  it("an IPv6-only network ignores a valid Network and the other IPv4 fields, as flanneld, and names them", () => {
    const config = parseNetworkConfig(
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","network":"10.66.0.0/16","SubnetLen":26,"SubnetMax":"10.66.9.0"}',
    );
    expect(config.ipv4).toBeUndefined();
    expect(config.ignoredFields).toEqual(["Network", "SubnetLen", "SubnetMax"]);
    // The one sentence `weft config set` prints and the daemon warns once at start.
    expect(ignoredFieldsNote(config)).toBe("Network, SubnetLen, SubnetMax given but unused: the network is IPv6-only (EnableIPv4: false)");
    // An IPv4 network reads as before.
    expect(parseNetworkConfig('{"Network":"10.66.0.0/16"}').ignoredFields).toEqual([]);
    expect(ignoredFieldsNote(parseNetworkConfig('{"Network":"10.66.0.0/16"}'))).toBeUndefined();
    expect(describeNetworkConfig(parseNetworkConfig('{"Network":"10.66.0.0/16"}'))).toBe("Network 10.66.0.0/16, /24 subnets");
  });
});
