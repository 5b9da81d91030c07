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
  ])("%s", (_name, text, expected) => {
    expect(incompatibility(running, parseNetworkConfig(text))).toBe(expected);
  });
});
