import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { concernsTrafficRules, parseRulesetLine } from "../../src/host/firewall/ruleset-events.js";

/**
 * fixtures/nft-monitor.jsonl: what `nft -j monitor ruleset` (nftables 1.0.6) printed in a
 * namespace while `ip weft` and `ip6 weft` were loaded, iptables-nft set FORWARD to DROP, added
 * WEFT-FWD and its jump, Docker-like rules went into the nat table, ip6tables-nft appended to
 * FORWARD, then FORWARD was flushed, weft's chain flushed and both weft tables deleted.
 */
const captured = readFileSync(new URL("fixtures/nft-monitor.jsonl", import.meta.url), "utf8").split("\n").filter(Boolean);
const changes = captured.map((line) => parseRulesetLine(line));

describe("nft monitor lines", () => {
  it("parses every captured line into verb, object kind, family and table", () => {
    expect(changes.every((change) => change !== undefined)).toBe(true);
    expect(changes[0]).toEqual({ verb: "add", kind: "table", family: "ip", table: "weft" });
    expect(changes).toContainEqual({ verb: "insert", kind: "rule", family: "ip", table: "filter" });
    expect(changes).toContainEqual({ verb: "delete", kind: "rule", family: "ip", table: "filter" }); // iptables -F FORWARD
    expect(changes).toContainEqual({ verb: "delete", kind: "table", family: "ip6", table: "weft" });
  });

  it("reads nothing from what is not one change", () => {
    for (const line of ["", "not json", "[]", "{}", '{"add": {}}', '{"add": {"table": {"family": "ip"}}}', '{"a": 1, "b": 2}', '{"add": {"rule": {"family": 4, "table": "weft"}}}']) {
      expect(parseRulesetLine(line), line).toBeUndefined();
    }
  });

  it("the weft tables and the (ip6)tables filter table concern the traffic rules, Docker's nat table does not", () => {
    const concerned = changes.filter((change) => change && concernsTrafficRules(change)).map((change) => `${change?.family} ${change?.table}`);
    expect(new Set(concerned)).toEqual(new Set(["ip weft", "ip6 weft", "ip filter", "ip6 filter"]));
    expect(concernsTrafficRules({ verb: "add", kind: "rule", family: "ip", table: "nat" })).toBe(false);
    expect(concernsTrafficRules({ verb: "add", kind: "table", family: "inet", table: "weft" })).toBe(false);
  });
});
