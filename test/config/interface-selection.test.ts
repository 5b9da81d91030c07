/*
 * Topology (everything lives in two namespaces the test creates; veth pairs have both ends inside):
 *
 *   netns <p>-a
 *   ┌──────────────────────────────────────────────────────────────────────────┐
 *   │ ext0  192.168.77.2/24  mtu 1400  ── default via 192.168.77.1             │
 *   │ int0  169.254.3.3/16, 10.20.0.5/16  mtu 9000 ── 10.30.0.0/16 via 10.20.0.1│
 *   │ ll0   169.254.9.9/32 only                                                │
 *   │ dep0  172.16.0.9/24 (deprecated), 172.16.0.10/24                         │
 *   │ down0 10.99.0.1/24, link down                                            │
 *   │ *p    peer ends, up, no IPv4                                             │
 *   └──────────────────────────────────────────────────────────────────────────┘
 *   netns <p>-b: only0 10.1.0.1/24, no default route
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listIpv4Interfaces, selectExternalInterface } from "../../src/config/interface-selection.js";

const prefix = `wt${randomBytes(2).toString("hex")}-`;
const nsA = `${prefix}a`;
const nsB = `${prefix}b`;

function ip(ns: string, ...args: string[]): void {
  execFileSync("ip", ["-n", ns, ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

function veth(ns: string, name: string, mtu: number, addresses: string[][], up = true): void {
  ip(ns, "link", "add", name, "mtu", String(mtu), "type", "veth", "peer", "name", `${name}p`);
  for (const address of addresses) ip(ns, "addr", "add", ...address, "dev", name);
  ip(ns, "link", "set", `${name}p`, "up");
  if (up) ip(ns, "link", "set", name, "up");
}

beforeAll(() => {
  for (const ns of [nsA, nsB]) execFileSync("ip", ["netns", "add", ns]);
  veth(nsA, "ext0", 1400, [["192.168.77.2/24"]]);
  veth(nsA, "int0", 9000, [["169.254.3.3/16"], ["10.20.0.5/16"]]);
  veth(nsA, "ll0", 1500, [["169.254.9.9/32"]]);
  veth(nsA, "dep0", 1500, [["172.16.0.9/24", "preferred_lft", "0"], ["172.16.0.10/24"]]);
  veth(nsA, "down0", 1500, [["10.99.0.1/24"]], false);
  ip(nsA, "route", "add", "default", "via", "192.168.77.1", "dev", "ext0");
  ip(nsA, "route", "add", "10.30.0.0/16", "via", "10.20.0.1", "dev", "int0");
  veth(nsB, "only0", 1500, [["10.1.0.1/24"]]);
});

afterAll(() => {
  for (const ns of [nsA, nsB]) {
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } catch {
      // Not created (beforeAll failed early); nothing to remove.
    }
  }
});

const none = { ifaces: [], ifaceRegexes: [] };

describe("listIpv4Interfaces", () => {
  it("lists usable addresses: global before link-local, no deprecated, no loopback", async () => {
    const byName = new Map((await listIpv4Interfaces(nsA)).map((iface) => [iface.name, iface]));
    expect(byName.get("lo")?.addresses).toEqual([]);
    expect(byName.get("int0")).toMatchObject({ mtu: 9000, up: true, addresses: ["10.20.0.5", "169.254.3.3"] });
    expect(byName.get("dep0")?.addresses).toEqual(["172.16.0.10"]);
    expect(byName.get("down0")).toMatchObject({ up: false, addresses: ["10.99.0.1"] });
    expect(byName.get("ext0p")?.addresses).toEqual([]);
  });
});

describe("selectExternalInterface", () => {
  const cases: {
    name: string;
    options: { ifaces?: string[]; ifaceRegexes?: string[]; ifaceCanReach?: string; publicIP?: string };
    expected: { name: string; address: string; publicIP: string; mtu: number; selectedBy: RegExp };
  }[] = [
    {
      name: "nothing given → default route interface",
      options: {},
      expected: { name: "ext0", address: "192.168.77.2", publicIP: "192.168.77.2", mtu: 1400, selectedBy: /^default route via 192\.168\.77\.1 dev ext0$/ },
    },
    {
      name: "--iface by name prefers the global address",
      options: { ifaces: ["int0"] },
      expected: { name: "int0", address: "10.20.0.5", publicIP: "10.20.0.5", mtu: 9000, selectedBy: /^--iface=int0$/ },
    },
    {
      name: "--iface by address uses that address, even link-local",
      options: { ifaces: ["169.254.3.3"] },
      expected: { name: "int0", address: "169.254.3.3", publicIP: "169.254.3.3", mtu: 9000, selectedBy: /address of int0/ },
    },
    {
      name: "--iface tried in order: missing and address-less ones are skipped",
      options: { ifaces: ["eth9", "ext0p", "10.1.0.1", "dep0"] },
      expected: { name: "dep0", address: "172.16.0.10", publicIP: "172.16.0.10", mtu: 1500, selectedBy: /^--iface=dep0$/ },
    },
    {
      name: "link-local only interface falls back to its link-local address",
      options: { ifaces: ["ll0"] },
      expected: { name: "ll0", address: "169.254.9.9", publicIP: "169.254.9.9", mtu: 1500, selectedBy: /--iface=ll0/ },
    },
    {
      name: "--iface wins over --iface-regex",
      options: { ifaces: ["ext0"], ifaceRegexes: ["^int"] },
      expected: { name: "ext0", address: "192.168.77.2", publicIP: "192.168.77.2", mtu: 1400, selectedBy: /--iface=ext0/ },
    },
    {
      name: "--iface-regex matches addresses before names",
      options: { ifaceRegexes: ["^10\\.20\\."] },
      expected: { name: "int0", address: "10.20.0.5", publicIP: "10.20.0.5", mtu: 9000, selectedBy: /\(address 10\.20\.0\.5\)/ },
    },
    {
      name: "--iface-regex address match may pick a non-first address",
      options: { ifaceRegexes: ["^169\\.254\\.3\\."] },
      expected: { name: "int0", address: "169.254.3.3", publicIP: "169.254.3.3", mtu: 9000, selectedBy: /address 169\.254\.3\.3/ },
    },
    {
      name: "--iface-regex by name skips a name match without IPv4 (ext0p) for the next one",
      options: { ifaceRegexes: ["^nomatch$", "^ext0"] },
      expected: { name: "ext0", address: "192.168.77.2", publicIP: "192.168.77.2", mtu: 1400, selectedBy: /^--iface-regex=\^ext0 \(name ext0\)$/ },
    },
    {
      name: "--iface-can-reach uses the route's device and preferred source",
      options: { ifaceCanReach: "10.30.4.4" },
      expected: { name: "int0", address: "10.20.0.5", publicIP: "10.20.0.5", mtu: 9000, selectedBy: /can-reach=10\.30\.4\.4 \(route via 10\.20\.0\.1 dev int0\)/ },
    },
    {
      name: "--iface-can-reach on a connected subnet",
      options: { ifaceCanReach: "172.16.0.77" },
      expected: { name: "dep0", address: "172.16.0.9", publicIP: "172.16.0.9", mtu: 1500, selectedBy: /route dev dep0/ },
    },
    {
      name: "only --public-ip → interface owning it",
      options: { publicIP: "10.20.0.5" },
      expected: { name: "int0", address: "10.20.0.5", publicIP: "10.20.0.5", mtu: 9000, selectedBy: /owned by int0/ },
    },
    {
      name: "--public-ip with --iface: NAT address advertised, interface address bound",
      options: { ifaces: ["ext0"], publicIP: "203.0.113.9" },
      expected: { name: "ext0", address: "192.168.77.2", publicIP: "203.0.113.9", mtu: 1400, selectedBy: /--iface=ext0/ },
    },
    {
      name: "--public-ip with --iface-can-reach",
      options: { ifaceCanReach: "192.168.77.40", publicIP: "203.0.113.9" },
      expected: { name: "ext0", address: "192.168.77.2", publicIP: "203.0.113.9", mtu: 1400, selectedBy: /can-reach/ },
    },
  ];
  for (const { name, options, expected } of cases) {
    it(name, async () => {
      const selected = await selectExternalInterface({ ...none, ...options, netns: nsA });
      expect(selected).toMatchObject({ ...expected, selectedBy: expect.stringMatching(expected.selectedBy) });
      expect(selected.index).toBeGreaterThan(1);
    });
  }

  const failures: { name: string; ns?: string; options: Parameters<typeof selectExternalInterface>[0]; error: RegExp }[] = [
    {
      name: "nothing matches: every attempt and every interface is named",
      options: { ifaces: ["eth9", "ext0p"], ifaceRegexes: ["^wlan"] },
      error:
        /--iface=eth9: no such interface; --iface=ext0p: it has no usable IPv4 address; --iface-regex=\^wlan: matches no interface name or IPv4 address.*interfaces here: lo \(down, no usable IPv4\), .*down0 \(down, 10\.99\.0\.1\)/,
    },
    { name: "regex matching only an address-less name", options: { ifaces: [], ifaceRegexes: ["p$"] }, error: /matches ext0p, which has no usable IPv4 address/ },
    { name: "invalid regex", options: { ifaces: [], ifaceRegexes: ["(eth"] }, error: /--iface-regex: "\(eth" is not a valid regular expression/ },
    { name: "invalid public IP", options: { ...none, publicIP: "my-host" }, error: /--public-ip: "my-host" is not an IPv4 address/ },
    { name: "invalid can-reach", options: { ...none, ifaceCanReach: "peer1" }, error: /--iface-can-reach: "peer1" is not an IPv4 address/ },
    {
      name: "only a public IP no interface owns (NAT) says what to add",
      options: { ...none, publicIP: "203.0.113.9" },
      error: /--public-ip=203\.0\.113\.9 is not an address of any local interface .*also give --iface=<name> or --iface-can-reach/,
    },
    { name: "no default route", ns: "b", options: { ...none }, error: /no IPv4 default route .*give --iface=.*only0 \(10\.1\.0\.1\)/ },
    { name: "can-reach with no route", ns: "b", options: { ...none, ifaceCanReach: "10.200.0.1" }, error: /--iface-can-reach=10\.200\.0\.1: no route to it: .*unreachable/ },
    { name: "missing namespace", ns: "missing", options: { ...none }, error: /`ip -n .*missing -j addr show` failed/ },
  ];
  for (const { name, ns, options, error } of failures) {
    it(`fails: ${name}`, async () => {
      const netns = ns === "b" ? nsB : ns === "missing" ? `${prefix}missing` : nsA;
      await expect(selectExternalInterface({ ...options, netns })).rejects.toThrow(error);
    });
  }
});
