import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { formatSubnetEnv, parseSubnetEnv } from "../../src/host/subnet-env.js";
import { parseSnapshot } from "../../src/backend/userspace/datapath-snapshot.js";
import { mutateText, parsedOrRefused } from "../support/fuzz-walk.js";
import { seededRandom } from "../support/seeded-random.js";

/**
 * The network config comes from etcd (any host or hand can write it), subnet.env and the data
 * path snapshot from disk (a crash, an editor, a disk error). A seeded random walk over inputs
 * near valid ones: no parser may throw anything but an Error with a message, and a parsed
 * subnet.env survives a format/parse round trip.
 */

const CONFIGS = [
  '{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}',
  '{"Network":"10.66.0.0/16","SubnetLen":26,"SubnetMin":"10.66.1.0","SubnetMax":"10.66.200.0","Backend":{"Type":"udp","Port":8285}}',
  '{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan","Userspace":true,"VNI":4}}',
  '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","IPv6SubnetLen":64,"Backend":{"Type":"host-gw"}}',
];
const ENVS = [
  "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
  "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.5.1/24\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:5::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n",
  "FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:5::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n",
];
const SNAPSHOT =
  '{"version":1,"backend":"vxlan","device":"weft.1","engine":{"mode":"vxlan","tunName":"weft.1","mtu":1450,"bindAddress":"192.168.77.12","vtepMac":"02:00:00:00:00:01"},"peers":[{"subnet":"10.66.1.0/24","publicIP":"192.168.77.11","vtepMac":"02:00:00:00:00:02","ipv6":{"subnet":"fd66:0:0:1::/64","publicIPv6":"fd77::11","vtepMac":"02:00:00:00:00:02"}}]}';
const ALPHABET = '0123456789abcdef:./-"{}[],:= \nAEFLNTUVXtrue';

function mutate(text: string, random: () => number): string {
  return mutateText(text, random, ALPHABET, 5);
}

describe("config, subnet.env and snapshot parsers under random input", () => {
  it("the network config: only Errors with a message; some mutants still parse", () => {
    const random = seededRandom(23);
    let parsed = 0;
    for (let i = 0; i < 10_000; i++) {
      if (parsedOrRefused(() => parseNetworkConfig(mutate(CONFIGS[i % CONFIGS.length] as string, random)))) parsed++;
    }
    expect(parsed).toBeGreaterThan(100); // the walk stays near valid configs, so it reaches deep checks
  });

  it("subnet.env: only Errors naming the file; what parses formats and parses to the same", () => {
    const random = seededRandom(29);
    let parsed = 0;
    for (let i = 0; i < 10_000; i++) {
      const env = parsedOrRefused(() => parseSubnetEnv(mutate(ENVS[i % ENVS.length] as string, random), "/run/flannel/subnet.env"));
      if (!env) continue;
      parsed++;
      expect(parseSubnetEnv(formatSubnetEnv(env), "again")).toEqual(env);
    }
    expect(parsed).toBeGreaterThan(100);
  });

  it("the data path snapshot: only Errors naming the file", () => {
    const random = seededRandom(31);
    for (let i = 0; i < 10_000; i++) {
      try {
        parseSnapshot(mutate(SNAPSHOT, random), "/var/lib/weft/datapath.json");
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).toContain("/var/lib/weft/datapath.json");
      }
    }
  });
});
