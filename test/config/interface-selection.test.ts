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
 *
 * IPv6 (dual-stack cases), all ULA, nodad so nothing is tentative:
 *   <p>-a  ext0  fd00:77::2/64
 *          int0  fd00:20::7/64 (dynamic: finite lifetime), fd00:20::5/64, fd00:20::9/64 (deprecated)
 *                ── fd00:30::/64 via fd00:20::1
 *   <p>-c  c0    10.3.0.1/24 fd00:3::1/64   ── IPv4 default via 10.3.0.254
 *          c1    fd00:31::1/64 only         ── IPv6 default via fd00:31::254
 *          c2    10.32.0.1/24, fe80::32/64 only (link-local)
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectExternalInterface } from "../../src/config/interface-selection.js";
import { listInterfaces } from "../../src/config/interface-listing.js";

const prefix = `wt${randomBytes(2).toString("hex")}-`;
const nsA = `${prefix}a`;
const nsB = `${prefix}b`;
const nsC = `${prefix}c`;

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
  for (const ns of [nsA, nsB, nsC]) execFileSync("ip", ["netns", "add", ns]);
  veth(nsA, "ext0", 1400, [["192.168.77.2/24"]]);
  veth(nsA, "int0", 9000, [["169.254.3.3/16"], ["10.20.0.5/16"]]);
  veth(nsA, "ll0", 1500, [["169.254.9.9/32"]]);
  veth(nsA, "dep0", 1500, [["172.16.0.9/24", "preferred_lft", "0"], ["172.16.0.10/24"]]);
  veth(nsA, "down0", 1500, [["10.99.0.1/24"]], false);
  ip(nsA, "route", "add", "default", "via", "192.168.77.1", "dev", "ext0");
  ip(nsA, "route", "add", "10.30.0.0/16", "via", "10.20.0.1", "dev", "int0");
  veth(nsB, "only0", 1500, [["10.1.0.1/24"]]);
  ip(nsA, "addr", "add", "fd00:77::2/64", "dev", "ext0", "nodad");
  ip(nsA, "addr", "add", "fd00:20::7/64", "dev", "int0", "valid_lft", "3600", "preferred_lft", "3600", "nodad");
  ip(nsA, "addr", "add", "fd00:20::5/64", "dev", "int0", "nodad");
  ip(nsA, "addr", "add", "fd00:20::9/64", "dev", "int0", "preferred_lft", "0", "nodad");
  ip(nsA, "route", "add", "fd00:30::/64", "via", "fd00:20::1", "dev", "int0");
  veth(nsC, "c0", 1500, [["10.3.0.1/24"], ["fd00:3::1/64", "nodad"]]);
  veth(nsC, "c1", 1500, [["fd00:31::1/64", "nodad"]]);
  veth(nsC, "c2", 1500, [["10.32.0.1/24"], ["fe80::32/64", "nodad"]]);
  ip(nsC, "route", "add", "default", "via", "10.3.0.254", "dev", "c0");
  ip(nsC, "-6", "route", "add", "default", "via", "fd00:31::254", "dev", "c1");
});

afterAll(() => {
  for (const ns of [nsA, nsB, nsC]) {
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } catch {
      // Not created (beforeAll failed early); nothing to remove.
    }
  }
});

const none = { ifaces: [], ifaceRegexes: [] };

describe("listInterfaces", () => {
  it("lists usable addresses: global before link-local, no deprecated, no loopback", async () => {
    const byName = new Map((await listInterfaces(nsA)).map((iface) => [iface.name, iface]));
    expect(byName.get("lo")?.addresses).toEqual([]);
    expect(byName.get("int0")).toMatchObject({ mtu: 9000, up: true, addresses: ["10.20.0.5", "169.254.3.3"] });
    expect(byName.get("dep0")?.addresses).toEqual(["172.16.0.10"]);
    expect(byName.get("down0")).toMatchObject({ up: false, addresses: ["10.99.0.1"] });
    expect(byName.get("ext0p")?.addresses).toEqual([]);
  });

  it("lists usable IPv6 addresses: global scope, permanent before dynamic, no deprecated; link-local apart", async () => {
    const byName = new Map((await listInterfaces(nsA)).map((iface) => [iface.name, iface]));
    expect(byName.get("int0")?.ipv6Addresses).toEqual(["fd00:20::5", "fd00:20::7"]);
    expect(byName.get("ext0")?.ipv6Addresses).toEqual(["fd00:77::2"]);
    expect(byName.get("lo")?.ipv6Addresses).toEqual([]);
    const c2 = (await listInterfaces(nsC)).find((iface) => iface.name === "c2");
    // The kernel adds its own fe80:: address too when the link comes up.
    expect(c2?.ipv6Addresses).toEqual([]);
    expect(c2?.ipv6LinkLocal).toContain("fe80::32");
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
    { name: "invalid can-reach", options: { ...none, ifaceCanReach: "peer1" }, error: /--iface-can-reach: "peer1" is not an IPv4 or IPv6 address/ },
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

describe("selectExternalInterface for a dual-stack network (EnableIPv6)", () => {
  const dual = { ipv6: true };
  const cases: {
    name: string;
    options: { ifaces?: string[]; ifaceRegexes?: string[]; ifaceCanReach?: string; publicIP?: string; publicIPv6?: string };
    expected: { name: string; address: string; addressV6: string | RegExp; publicIPv6: string | RegExp; selectedBy: RegExp };
  }[] = [
    {
      name: "nothing given → the IPv4 default route's interface and its IPv6 address (no IPv6 default route here)",
      options: {},
      expected: { name: "ext0", address: "192.168.77.2", addressV6: "fd00:77::2", publicIPv6: "fd00:77::2", selectedBy: /^default route via 192\.168\.77\.1 dev ext0$/ },
    },
    {
      name: "--iface by name: the permanent address before the dynamic one, never the deprecated one",
      options: { ifaces: ["int0"] },
      expected: { name: "int0", address: "10.20.0.5", addressV6: "fd00:20::5", publicIPv6: "fd00:20::5", selectedBy: /^--iface=int0$/ },
    },
    {
      name: "--iface by IPv6 address (written any way): that address, and the interface's IPv4",
      options: { ifaces: ["FD00:20:0::7"] },
      expected: { name: "int0", address: "10.20.0.5", addressV6: "fd00:20::7", publicIPv6: "fd00:20::7", selectedBy: /IPv6 address of int0/ },
    },
    {
      name: "--iface-regex matching an IPv4 and an IPv6 address of one interface (flanneld's dual-stack rule)",
      options: { ifaceRegexes: ["^(10\\.20\\.|fd00:20::7)"] },
      expected: { name: "int0", address: "10.20.0.5", addressV6: "fd00:20::7", publicIPv6: "fd00:20::7", selectedBy: /addresses 10\.20\.0\.5 and fd00:20::7/ },
    },
    {
      name: "--iface-can-reach an IPv6 peer: the route's device and IPv6 source",
      options: { ifaceCanReach: "fd00:30::4" },
      expected: { name: "int0", address: "10.20.0.5", addressV6: /^fd00:20::[57]$/, publicIPv6: /^fd00:20::[57]$/, selectedBy: /can-reach=fd00:30::4 \(route via fd00:20::1 dev int0\)/ },
    },
    {
      name: "only --public-ipv6 → the interface owning it",
      options: { publicIPv6: "fd00:20::7" },
      expected: { name: "int0", address: "10.20.0.5", addressV6: "fd00:20::7", publicIPv6: "fd00:20::7", selectedBy: /owned by int0/ },
    },
    {
      name: "--public-ipv6 no interface owns (NAT) with --iface: advertised, the interface address bound",
      options: { ifaces: ["ext0"], publicIPv6: "fd99::9" },
      expected: { name: "ext0", address: "192.168.77.2", addressV6: "fd00:77::2", publicIPv6: "fd99::9", selectedBy: /--iface=ext0/ },
    },
  ];
  for (const { name, options, expected } of cases) {
    it(name, async () => {
      const selected = await selectExternalInterface({ ...none, ...options, netns: nsA }, dual);
      const text = (value: string | RegExp) => (typeof value === "string" ? value : expect.stringMatching(value));
      expect(selected).toMatchObject({ ...expected, addressV6: text(expected.addressV6), publicIPv6: text(expected.publicIPv6), selectedBy: expect.stringMatching(expected.selectedBy) });
    });
  }

  it("an IPv4-only network leaves addressV6 and publicIPv6 out, even with --public-ipv6", async () => {
    const selected = await selectExternalInterface({ ...none, ifaces: ["int0"], publicIPv6: "fd00:20::7", netns: nsA });
    expect(selected.addressV6).toBeUndefined();
    expect(selected.publicIPv6).toBeUndefined();
  });

  const failures: { name: string; ns: string; options: Parameters<typeof selectExternalInterface>[0]; error: RegExp }[] = [
    {
      name: "an interface with only a link-local IPv6 address is named, with what to do",
      ns: nsC,
      options: { ...none, ifaces: ["c2"] },
      error: /interface c2 \(--iface=c2\) has no usable IPv6 address .*only link-local .*fe80::32, which peers cannot reach.*EnableIPv6.*ip addr add fd00::5\/64 dev c2/,
    },
    {
      name: "the IPv6 default route leaves by another interface than the IPv4 one",
      ns: nsC,
      options: { ...none },
      error: /the IPv6 default route uses c1, the IPv4 default route c0/,
    },
    {
      name: "--public-ipv6 of another local interface than the chosen one",
      ns: nsA,
      options: { ...none, ifaces: ["ext0"], publicIPv6: "fd00:20::5" },
      error: /--public-ipv6=fd00:20::5 belongs to int0, but the underlay interface is ext0/,
    },
    {
      name: "an IPv4-only regex in a dual-stack network matches no address pair (flanneld's rule) and no name",
      ns: nsA,
      options: { ...none, ifaceRegexes: ["^10\\.20\\."] },
      error: /--iface-regex=\^10\\\.20\\\.: matches no interface name or an IPv4 and an IPv6 address of one interface/,
    },
    { name: "--public-ipv6 that is not an IPv6 address", ns: nsA, options: { ...none, publicIPv6: "10.0.0.1" }, error: /--public-ipv6: "10\.0\.0\.1" is not an IPv6 address/ },
    { name: "an IPv6 --iface nobody has", ns: nsA, options: { ...none, ifaces: ["fd00:99::1"] }, error: /--iface=fd00:99::1: no interface has this IPv6 address/ },
  ];
  for (const { name, ns, options, error } of failures) {
    it(`fails: ${name}`, async () => {
      await expect(selectExternalInterface({ ...options, netns: ns }, dual)).rejects.toThrow(error);
    });
  }
});

describe("selectExternalInterface in an IPv6-only network (EnableIPv4: false): by IPv6, no IPv4 needed", () => {
  const v6only = { ipv6: true, ipv4: false };
  const cases: { name: string; options: Partial<Parameters<typeof selectExternalInterface>[0]>; expected: Record<string, unknown> }[] = [
    { name: "nothing given: the IPv6 default route's interface, which has no IPv4", options: {}, expected: { name: "c1", addressV6: "fd00:31::1", publicIPv6: "fd00:31::1", selectedBy: "IPv6 default route via fd00:31::254 dev c1" } },
    { name: "--iface by name of an IPv6-only interface", options: { ifaces: ["c1"] }, expected: { name: "c1", addressV6: "fd00:31::1", selectedBy: "--iface=c1" } },
    { name: "--iface by its IPv6 address", options: { ifaces: ["fd00:31::1"] }, expected: { name: "c1", addressV6: "fd00:31::1", selectedBy: "--iface=fd00:31::1 (IPv6 address of c1)" } },
    { name: "--iface-regex over IPv6 addresses alone (flanneld's ipv6Stack)", options: { ifaceRegexes: ["^fd00:31:"] }, expected: { name: "c1", addressV6: "fd00:31::1", selectedBy: "--iface-regex=^fd00:31: (IPv6 address fd00:31::1)" } },
    { name: "only --public-ipv6 → its owner", options: { publicIPv6: "fd00:31::1" }, expected: { name: "c1", addressV6: "fd00:31::1", publicIPv6: "fd00:31::1" } },
  ];
  for (const { name, options, expected } of cases) {
    it(name, async () => {
      const selected = await selectExternalInterface({ ...none, ...options, netns: nsC }, v6only);
      expect(selected).toMatchObject(expected);
      expect(selected.address).toBeUndefined();
      expect(selected.publicIP).toBeUndefined();
    });
  }

  it("an interface that also has IPv4 keeps it (unused by IPv6-only leases); one without a usable IPv6 address is refused", async () => {
    const both = await selectExternalInterface({ ...none, ifaces: ["c0"], netns: nsC }, v6only);
    expect(both).toMatchObject({ name: "c0", address: "10.3.0.1", addressV6: "fd00:3::1" });
    await expect(selectExternalInterface({ ...none, ifaces: ["c2"], netns: nsC }, v6only)).rejects.toThrow(/interface c2 \(--iface=c2\) has no usable IPv6 address/);
    await expect(selectExternalInterface({ ...none, ifaceRegexes: ["^10\\."], netns: nsC }, v6only)).rejects.toThrow(/matches no interface name \(with a usable IPv6 address\) or IPv6 address/);
  });

  it("the same interface without IPv4 is refused when the network leases IPv4", async () => {
    await expect(selectExternalInterface({ ...none, ifaces: ["c1"], netns: nsC }, { ipv6: true })).rejects.toThrow(/--iface=c1: it has no usable IPv4 address/);
  });
});
