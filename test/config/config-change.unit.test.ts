import { describe, expect, it } from "vitest";
import { incompatibility } from "../../src/config/config-change.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";

const running = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}');

describe("incompatibility (a config replaced under a running daemon)", () => {
  it.each<[string, string, string | undefined]>([
    ["the same config", '{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}', undefined],
    ["other backend options only", '{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan","VNI":1}}', undefined],
    ["another Network (SubnetMin/Max follow it)", '{"Network":"10.77.0.0/16","Backend":{"Type":"vxlan"}}', "Network 10.66.0.0/16 → 10.77.0.0/16, SubnetMin 10.66.1.0 → 10.77.1.0, SubnetMax 10.66.255.0 → 10.77.255.0"],
    ["another SubnetLen", '{"Network":"10.66.0.0/16","SubnetLen":26,"Backend":{"Type":"vxlan"}}', "SubnetLen 24 → 26, SubnetMin 10.66.1.0 → 10.66.0.64, SubnetMax 10.66.255.0 → 10.66.255.192"],
    ["another backend", '{"Network":"10.66.0.0/16","Backend":{"Type":"udp"}}', "Backend.Type vxlan → udp"],
    [
      "IPv6 turned on (every lease must change its key)",
      '{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}',
      "EnableIPv6 false → true, IPv6Network - → fd66::/48, IPv6SubnetLen - → 64, IPv6SubnetMin - → fd66:0:0:1::, IPv6SubnetMax - → fd66:0:0:ffff::",
    ],
    [
      "IPv4 turned off (an IPv6-only network: every lease must change its key)",
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}',
      "EnableIPv4 true → false, Network 10.66.0.0/16 → -, SubnetLen 24 → -, SubnetMin 10.66.1.0 → -, SubnetMax 10.66.255.0 → -, " +
        "EnableIPv6 false → true, IPv6Network - → fd66::/48, IPv6SubnetLen - → 64, IPv6SubnetMin - → fd66:0:0:1::, IPv6SubnetMax - → fd66:0:0:ffff::",
    ],
  ])("%s", (_name, text, expected) => {
    expect(incompatibility(running, parseNetworkConfig(text))).toBe(expected);
  });
});

describe("incompatibility of two dual-stack configs", () => {
  const dual = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');
  it.each<[string, string, string | undefined]>([
    ["the same", '{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}', undefined],
    [
      "another IPv6SubnetMax",
      '{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","IPv6SubnetMax":"fd66:0:0:ff::","Backend":{"Type":"vxlan"}}',
      "IPv6SubnetMax fd66:0:0:ffff:: → fd66:0:0:ff::",
    ],
  ])("%s", (_name, text, expected) => {
    expect(incompatibility(dual, parseNetworkConfig(text))).toBe(expected);
  });
});
