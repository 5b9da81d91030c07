import { describe, expect, it } from "vitest";
import { formatLeaseValue, parseLeaseValue } from "../../src/lease/lease-value.js";
import { parseSubnetKey, sameSubnets, subnetKeyName, subnetKeyProblem, subnetsClaimedByKey } from "../../src/lease/subnet-key.js";
import { decodeLease } from "../../src/lease/stored-lease.js";
import { mutateText, parsedOrRefused } from "../support/fuzz-walk.js";
import { seededRandom } from "../support/seeded-random.js";

/**
 * Keys and values come from etcd, i.e. from any host (or hand) that can write there. A seeded
 * random walk over inputs near the dual-stack forms: no parser may throw anything but an Error
 * with a message, and whatever parses must survive a format/parse round trip.
 */

const SEEDS = ["10.66.52.0-24&fd66:0:0:6::-64", "10.66.36.0-24", "10.42.0.0-24&fc00::-64", "10.66.5.0-24&::ffff:1.2.3.4-128", "0.0.0.0-0&fd66:0:0:6::-64"];
const KEY_ALPHABET = "0123456789abcdefABCDEF:.-&/%zg ";

function mutate(text: string, random: () => number): string {
  return mutateText(text, random, KEY_ALPHABET, 4);
}

const VALUE_ALPHABET = '{}[]":,0123456789abcdef.PublicIPv6 nul';

/** A lease value with one to three characters replaced from the JSON-ish alphabet. */
function mutateValue(base: string, random: () => number): string {
  const chars = [...base];
  for (let edit = 0; edit < 1 + Math.floor(random() * 3); edit++) {
    chars.splice(Math.floor(random() * chars.length), 1, VALUE_ALPHABET[Math.floor(random() * VALUE_ALPHABET.length)] as string);
  }
  return chars.join("");
}

describe("lease parsers under random input", () => {
  it("subnet keys: parse, claims and problems never throw; what parses has one canonical name", () => {
    const random = seededRandom(11);
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      const key = `/coreos.com/network/subnets/${mutate(SEEDS[i % SEEDS.length] as string, random)}`;
      const parts = parseSubnetKey(key);
      const claimed = subnetsClaimedByKey(key);
      const problem = subnetKeyProblem(key);
      expect(typeof problem).toBe("string");
      if (!parts) continue;
      parsed++;
      // A parseable key claims exactly its subnets, and its canonical name parses to the same.
      if (parts.subnet) expect(claimed.subnet?.equals(parts.subnet)).toBe(true);
      else expect(claimed.subnet).toBeUndefined();
      if (parts.ipv6Subnet) expect(claimed.ipv6Subnet?.equals(parts.ipv6Subnet)).toBe(true);
      const again = parseSubnetKey(`/p/subnets/${subnetKeyName(parts)}`);
      expect(again && sameSubnets(again, parts)).toBe(true);
      expect(again?.ipv6Subnet?.toString()).toBe(parts.ipv6Subnet?.toString());
    }
    // The walk stays near the real forms: a fair share of its keys still parse.
    expect(parsed).toBeGreaterThan(500);
  });

  it("lease values: only Errors, and a parsed value round-trips through flanneld's format", () => {
    const random = seededRandom(23);
    const base = '{"PublicIP":"192.168.77.1","PublicIPv6":"fd77::11","BackendType":"vxlan","BackendData":{"VNI":1},"BackendV6Data":{"VNI":1}}';
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = mutateValue(base, random);
      const attrs = parsedOrRefused(() => parseLeaseValue(text));
      if (!attrs) continue;
      parsed++;
      expect(parseLeaseValue(formatLeaseValue(attrs))).toEqual(attrs);
    }
    expect(parsed).toBeGreaterThan(500);
  });

  it("IPv6-only leases (0.0.0.0-0&…): decodeLease throws only Errors that name the key, and what decodes has a PublicIPv6", () => {
    const random = seededRandom(37);
    const key = "/coreos.com/network/subnets/0.0.0.0-0&fd66:0:0:6::-64";
    const base = '{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::11","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"5a:fb:51:d3:e0:c0"}}';
    let decoded = 0;
    for (let i = 0; i < 10_000; i++) {
      try {
        const lease = decodeLease({ key, value: mutateValue(base, random), leaseId: "5", modRevision: "1" });
        decoded++;
        expect(lease.subnet).toBeUndefined();
        expect(lease.attrs.publicIP).toBe("0.0.0.0");
        expect(lease.attrs.publicIPv6).not.toBeNull();
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message.startsWith(`${key}: `)).toBe(true);
      }
    }
    expect(decoded).toBeGreaterThan(500);
  });
});
