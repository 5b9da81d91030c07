/*
 * Two overlay hosts' containers and an outside host, joined by a router namespace that plays a
 * Docker host: iptables FORWARD policy DROP, DOCKER-USER (with Docker's old trailing RETURN and
 * an administrator's rule), FORWARD → DOCKER-USER. Once per iptables world (nft, legacy).
 *
 *   ┌─ <p>a ───────────┐    ┌─ <p>r (Docker host) ──────┐    ┌─ <p>b ───────────────┐
 *   │ eth0 10.66.1.2   ├────┤ a0 10.66.1.1/24           │    │ eth0 10.66.2.2/24    │
 *   │ gw 10.66.1.1     │    │ b0 10.66.2.1/24 ──────────┼────┤      172.31.10.2/24  │
 *   └──────────────────┘    │    172.31.10.1/24         │    │ gw 10.66.2.1         │
 *                           │ o0 172.31.9.1/24 ─────┐   │    └──────────────────────┘
 *   ┌─ <p>o ───────────┐    │ ip_forward=1          │   │
 *   │ eth0 172.31.9.2  ├────┼───────────────────────┘   │   Network 10.66.0.0/16
 *   └──────────────────┘    └───────────────────────────┘
 * a ↔ 10.66.2.2 is Network traffic that the router must forward (a container on another host);
 * o ↔ 172.31.10.2 is not, and must stay dropped. The IPv6 variant adds, per link, the same
 * roles in IPv6: a fd66:0:0:1::2, b fd66:0:0:2::2 and fd00:10::2, o fd00:9::2 (IPv6Network
 * fd66::/48), with Docker's ip6tables rules instead of its iptables ones.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, setSysctls, uniquePrefix } from "../../src/lab/netns.js";
import { TrafficRules } from "../../src/host/firewall/traffic-rules.js";
import { FilterForward } from "../../src/host/firewall/filter-forward.js";
import { NftFilterTable } from "../../src/host/firewall/nft-filter-table.js";
import { IptablesFilterTable, parseIptablesListing } from "../../src/host/firewall/iptables-filter-table.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { silentLogger } from "../../src/observe/logger.js";
import { ipv6AddressesSettled } from "../support/ipv6-settled.js";

const network = Ipv4Subnet.parse("10.66.0.0/16");
const ownSubnet = Ipv4Subnet.parse("10.66.1.0/24");
const ipv6 = { network: Ipv6Subnet.parse("fd66::/48"), ownSubnet: Ipv6Subnet.parse("fd66:0:0:1::/64") };
const WEFT_JUMP = '-m comment --comment "weft forward" -j WEFT-FWD';

async function reaches(from: string, address: string): Promise<boolean> {
  const result = await execInNamespace(from, "ping", ["-c", "1", "-W", "1", address], { allowFailure: true });
  return result.exitCode === 0;
}

async function buildTopology(p: string, withIpv6 = false): Promise<{ a: string; r: string; b: string; o: string }> {
  const [a, r, b, o] = [`${p}a`, `${p}r`, `${p}b`, `${p}o`];
  const v6 = (...addresses: string[]) => (withIpv6 ? addresses : []);
  await Promise.all([a, r, b, o].map((name) => createNamespace(name)));
  await createVethPair({ name: "eth0", namespace: a, addresses: ["10.66.1.2/24", ...v6("fd66:0:0:1::2/64")] }, { name: "a0", namespace: r, addresses: ["10.66.1.1/24", ...v6("fd66:0:0:1::1/64")] });
  await createVethPair(
    { name: "eth0", namespace: b, addresses: ["10.66.2.2/24", "172.31.10.2/24", ...v6("fd66:0:0:2::2/64", "fd00:10::2/64")] },
    { name: "b0", namespace: r, addresses: ["10.66.2.1/24", "172.31.10.1/24", ...v6("fd66:0:0:2::1/64", "fd00:10::1/64")] },
  );
  await createVethPair({ name: "eth0", namespace: o, addresses: ["172.31.9.2/24", ...v6("fd00:9::2/64")] }, { name: "o0", namespace: r, addresses: ["172.31.9.1/24", ...v6("fd00:9::1/64")] });
  await ipBatch(a, ["route add default via 10.66.1.1", ...v6("route add ::/0 via fd66:0:0:1::1")]);
  await ipBatch(b, ["route add default via 10.66.2.1", ...v6("route add ::/0 via fd66:0:0:2::1")]);
  await ipBatch(o, ["route add default via 172.31.9.1", ...v6("route add ::/0 via fd00:9::1")]);
  await setSysctls(r, { "net.ipv4.ip_forward": "1", ...(withIpv6 ? { "net.ipv6.conf.all.forwarding": "1" } : {}) });
  if (withIpv6) await Promise.all([a, r, b, o].map((name) => ipv6AddressesSettled(name)));
  return { a, r, b, o };
}

describe.each(["nft", "legacy"] as const)("WEFT-FWD on a Docker host (iptables-%s)", (world) => {
  const p = uniquePrefix(world === "nft" ? "wdn" : "wdl");
  const names = { a: `${p}a`, r: `${p}r`, b: `${p}b`, o: `${p}o` };
  const rules = new TrafficRules(silentLogger(), { netns: names.r });
  const iptables = (...args: string[]) => execInNamespace(names.r, `iptables-${world}`, ["-w", "5", ...args]);
  const listing = async (chain?: string) => (await iptables("-S", ...(chain ? [chain] : []))).stdout;
  const emulateDocker = async () => {
    await iptables("-P", "FORWARD", "DROP");
    await iptables("-N", "DOCKER-USER");
    await iptables("-A", "DOCKER-USER", "-s", "192.0.2.0/24", "-j", "DROP");
    await iptables("-A", "DOCKER-USER", "-j", "RETURN");
    await iptables("-A", "FORWARD", "-j", "DOCKER-USER");
  };

  beforeAll(async () => {
    await buildTopology(p);
    await emulateDocker();
  });
  afterAll(async () => {
    await Promise.all(Object.values(names).map((name) => deleteNamespace(name)));
  });

  it("Network traffic is dropped under Docker's FORWARD DROP and forwarded after apply(); other traffic stays dropped", async () => {
    const dockerOnly = await listing();
    expect(await reaches(names.a, "10.66.2.2")).toBe(false);
    await rules.apply({ network, ownSubnet, ipMasq: false, forwardRules: true });
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);
    expect(await reaches(names.o, "10.66.2.2")).toBe(true); // from outside into the Network (-d rule)
    expect(await reaches(names.o, "172.31.10.2")).toBe(false); // neither end in the Network
    // The jump sits first in DOCKER-USER, ahead of the administrator's rule and Docker's RETURN.
    expect((await listing("DOCKER-USER")).trim().split("\n")).toEqual([
      "-N DOCKER-USER",
      `-A DOCKER-USER ${WEFT_JUMP}`,
      "-A DOCKER-USER -s 192.0.2.0/24 -j DROP",
      "-A DOCKER-USER -j RETURN",
    ]);
    expect((await listing("WEFT-FWD")).trim().split("\n")).toEqual([
      "-N WEFT-FWD",
      '-A WEFT-FWD -s 10.66.0.0/16 -m comment --comment "weft forward" -j ACCEPT',
      '-A WEFT-FWD -d 10.66.0.0/16 -m comment --comment "weft forward" -j ACCEPT',
    ]);
    expect(await listing("FORWARD")).not.toContain("WEFT-FWD");
    // Only Docker's world was touched: the other iptables world has no filter table.
    if (world === "nft") {
      expect((await execInNamespace(names.r, "cat", ["/proc/net/ip_tables_names"])).stdout).not.toContain("filter");
    } else {
      const other = await execInNamespace(names.r, "nft", ["list", "table", "ip", "filter"], { allowFailure: true });
      expect(other.exitCode).not.toBe(0);
    }
    expect(parseIptablesListing(dockerOnly).jumps).toEqual([]);
  });

  it("verify() is quiet through a Docker restart and repairs a flushed DOCKER-USER, a deleted jump and a flushed WEFT-FWD", async () => {
    const started = performance.now();
    expect(await rules.verify()).toEqual({ repaired: false });
    const verifyMs = performance.now() - started;
    console.info(`iptables-${world}: verify() with everything intact took ${verifyMs.toFixed(0)} ms`);

    // Docker's restart rebuilds FORWARD and keeps DOCKER-USER: nothing to repair.
    await iptables("-F", "FORWARD");
    await iptables("-A", "FORWARD", "-j", "DOCKER-USER");
    expect(await rules.verify()).toEqual({ repaired: false });
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);

    await iptables("-F", "DOCKER-USER");
    await iptables("-A", "DOCKER-USER", "-j", "RETURN");
    expect(await reaches(names.a, "10.66.2.2")).toBe(false);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);

    await iptables("-D", "DOCKER-USER", "-m", "comment", "--comment", "weft forward", "-j", "WEFT-FWD");
    expect(await listing("DOCKER-USER")).not.toContain("WEFT-FWD");
    expect(await rules.verify()).toEqual({ repaired: true });
    expect((await listing("DOCKER-USER")).split("\n")[1]).toBe(`-A DOCKER-USER ${WEFT_JUMP}`);

    await iptables("-F", "WEFT-FWD");
    expect(await reaches(names.a, "10.66.2.2")).toBe(false);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);
    expect(await rules.verify()).toEqual({ repaired: false });
  });

  it("remove() takes out exactly weft's jump and chain", async () => {
    await rules.remove();
    expect(await listing()).toBe(
      ["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT", "-N DOCKER-USER", "-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -j RETURN", ""].join("\n"),
    );
    expect(await reaches(names.a, "10.66.2.2")).toBe(false);
    await rules.remove(); // idempotent
  });

  it("without DOCKER-USER (FORWARD policy DROP only) the jump goes to the top of FORWARD", async () => {
    await iptables("-F");
    await iptables("-X");
    await iptables("-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP");
    const before = await listing();
    expect(await reaches(names.a, "10.66.2.2")).toBe(false);
    await rules.apply({ network, ownSubnet, ipMasq: true, forwardRules: true });
    expect((await listing("FORWARD")).trim().split("\n")).toEqual(["-P FORWARD DROP", `-A FORWARD ${WEFT_JUMP}`, "-A FORWARD -s 192.0.2.0/24 -j DROP"]);
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);
    expect(await rules.verify()).toEqual({ repaired: false });
    await iptables("-D", "FORWARD", "1");
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);

    // Docker starts after weft: verify() moves the jump into DOCKER-USER, the chain Docker keeps.
    await iptables("-N", "DOCKER-USER");
    await iptables("-I", "FORWARD", "1", "-j", "DOCKER-USER");
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await listing("FORWARD")).not.toContain("WEFT-FWD");
    expect((await listing("DOCKER-USER")).split("\n")[1]).toBe(`-A DOCKER-USER ${WEFT_JUMP}`);
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);

    await rules.remove();
    await iptables("-D", "FORWARD", "-j", "DOCKER-USER");
    await iptables("-X", "DOCKER-USER");
    expect(await listing()).toBe(before);
  });

  it("forwardRules=false leaves the filter table alone and takes WEFT-FWD out", async () => {
    await rules.apply({ network, ownSubnet, ipMasq: false, forwardRules: true });
    expect(await listing()).toContain("WEFT-FWD");
    await rules.apply({ network, ownSubnet, ipMasq: true, forwardRules: false });
    expect(await listing()).not.toContain("WEFT-FWD");
    expect(await rules.verify()).toEqual({ repaired: false });
    expect(await listing()).not.toContain("WEFT-FWD");
    await rules.apply({ network, ownSubnet, ipMasq: false, forwardRules: true });
    await rules.apply({ network, ownSubnet, ipMasq: false, forwardRules: false });
    expect(await listing()).not.toContain("WEFT-FWD");
    expect((await execInNamespace(names.r, "nft", ["list", "tables"])).stdout).not.toContain("weft");
    await rules.remove();
  });
});

describe("WEFT-FWD through nft when no iptables command is installed", () => {
  const p = uniquePrefix("wdf");
  const names = { a: `${p}a`, r: `${p}r`, b: `${p}b`, o: `${p}o` };
  const viaNft = new FilterForward(names.r, [new NftFilterTable(names.r)]);
  const viaIptables = new FilterForward(names.r, [new IptablesFilterTable("iptables-nft", names.r, false)]);
  const iptables = (...args: string[]) => execInNamespace(names.r, "iptables-nft", args);

  beforeAll(async () => {
    await buildTopology(p);
    await iptables("-P", "FORWARD", "DROP");
    await iptables("-N", "DOCKER-USER");
    await iptables("-A", "FORWARD", "-j", "DOCKER-USER");
  });
  afterAll(async () => {
    await Promise.all(Object.values(names).map((name) => deleteNamespace(name)));
  });

  it("installs rules that forward traffic, that iptables-nft lists as its own, and removes exactly them", async () => {
    const dockerOnly = (await iptables("-S")).stdout;
    expect(await viaNft.sync(network)).toEqual([{ table: "nft table ip filter", action: "installed", hook: "DOCKER-USER" }]);
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);
    expect(await viaNft.sync(network)).toEqual([]);
    // iptables-nft reads nft's rules as the same rules it would write: no change from it either.
    const listed = await iptables("-S");
    expect(listed.stderr).not.toMatch(/incompatible/);
    expect(listed.stdout).toContain('-A WEFT-FWD -s 10.66.0.0/16 -m comment --comment "weft forward" -j ACCEPT');
    expect(listed.stdout).toContain(`-A DOCKER-USER ${WEFT_JUMP}`);
    expect(await viaIptables.sync(network)).toEqual([]);

    await execInNamespace(names.r, "nft", ["flush", "chain", "ip", "filter", "DOCKER-USER"]);
    expect(await viaNft.sync(network)).toEqual([{ table: "nft table ip filter", action: "installed", hook: "DOCKER-USER" }]);
    expect(await reaches(names.a, "10.66.2.2")).toBe(true);

    expect(await viaNft.remove()).toEqual([{ table: "nft table ip filter", action: "removed" }]);
    expect((await iptables("-S")).stdout).toBe(dockerOnly);
    expect(await viaNft.remove()).toEqual([]);
  });

  it("a tool that cannot be run is reported with the table it was meant for", async () => {
    const broken = new FilterForward(names.r, [new IptablesFilterTable("iptables-weft-missing", names.r, false)]);
    await expect(broken.sync(network)).rejects.toThrow(/WEFT-FWD accept rules.*iptables-weft-missing filter table: "iptables-weft-missing" is not installed/);
  });
});

describe.each(["nft", "legacy"] as const)("WEFT-FWD for IPv6 on a Docker host (ip6tables-%s)", (world) => {
  const p = uniquePrefix(world === "nft" ? "w6n" : "w6l");
  const names = { a: `${p}a`, r: `${p}r`, b: `${p}b`, o: `${p}o` };
  const rules = new TrafficRules(silentLogger(), { netns: names.r });
  const ip6tables = (...args: string[]) => execInNamespace(names.r, `ip6tables-${world}`, ["-w", "5", ...args]);
  const listing = async (chain?: string) => (await ip6tables("-S", ...(chain ? [chain] : []))).stdout;
  const desired = { network, ownSubnet, ipMasq: false, forwardRules: true, ipv6 };

  beforeAll(async () => {
    await buildTopology(p, true);
    await ip6tables("-P", "FORWARD", "DROP");
    await ip6tables("-N", "DOCKER-USER");
    await ip6tables("-A", "DOCKER-USER", "-j", "RETURN");
    await ip6tables("-A", "FORWARD", "-j", "DOCKER-USER");
  });
  afterAll(async () => {
    await Promise.all(Object.values(names).map((name) => deleteNamespace(name)));
  });

  it("IPv6Network traffic is dropped under ip6tables FORWARD DROP and forwarded after apply(); other IPv6 traffic stays dropped", async () => {
    const dockerOnly = await listing();
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(false);
    await rules.apply({ ...desired, ipv6: undefined });
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(false); // a single-stack config leaves ip6tables alone
    expect(await listing()).toBe(dockerOnly);
    await rules.apply(desired);
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(true);
    expect(await reaches(names.o, "fd66:0:0:2::2")).toBe(true); // from outside into the IPv6Network (-d rule)
    expect(await reaches(names.o, "fd00:10::2")).toBe(false); // neither end in the IPv6Network
    expect(await reaches(names.a, "10.66.2.2")).toBe(true); // IPv4 forwarding was never dropped here
    expect((await listing("DOCKER-USER")).trim().split("\n")).toEqual(["-N DOCKER-USER", `-A DOCKER-USER ${WEFT_JUMP}`, "-A DOCKER-USER -j RETURN"]);
    expect((await listing("WEFT-FWD")).trim().split("\n")).toEqual([
      "-N WEFT-FWD",
      '-A WEFT-FWD -s fd66::/48 -m comment --comment "weft forward" -j ACCEPT',
      '-A WEFT-FWD -d fd66::/48 -m comment --comment "weft forward" -j ACCEPT',
    ]);
    // The IPv4 filter table had nothing dropping, so weft did not touch it.
    expect((await execInNamespace(names.r, `iptables-${world}`, ["-w", "5", "-S"])).stdout).not.toContain("WEFT-FWD");
  });

  it("verify() repairs a flushed IPv6 DOCKER-USER and a flushed WEFT-FWD, and is quiet when intact", async () => {
    expect(await rules.verify()).toEqual({ repaired: false });
    await ip6tables("-F", "DOCKER-USER");
    await ip6tables("-A", "DOCKER-USER", "-j", "RETURN");
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(false);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(true);
    await ip6tables("-F", "WEFT-FWD");
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(true);
    expect(await rules.verify()).toEqual({ repaired: false });
  });

  it("remove() (weft cleanup) takes out exactly weft's IPv6 jump and chain", async () => {
    await rules.remove();
    expect(await listing()).toBe(["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT", "-N DOCKER-USER", "-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -j RETURN", ""].join("\n"));
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(false);
  });

  it.runIf(world === "nft")("through nft alone (no ip6tables installed) the rules land in table ip6 filter, as ip6tables-nft would write them", async () => {
    const viaNft = new FilterForward(names.r, [new NftFilterTable(names.r, 6)], 6);
    expect(await viaNft.sync(ipv6.network)).toEqual([{ table: "nft table ip6 filter", action: "installed", hook: "DOCKER-USER" }]);
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(true);
    expect(await viaNft.sync(ipv6.network)).toEqual([]);
    const listed = await ip6tables("-S");
    expect(listed.stderr).not.toMatch(/incompatible/);
    expect(listed.stdout).toContain('-A WEFT-FWD -s fd66::/48 -m comment --comment "weft forward" -j ACCEPT');
    const viaIp6tables = new FilterForward(names.r, [new IptablesFilterTable("ip6tables-nft", names.r, false, 6)], 6);
    expect(await viaIp6tables.sync(ipv6.network)).toEqual([]);
    expect(await viaNft.remove()).toEqual([{ table: "nft table ip6 filter", action: "removed" }]);
    expect(await reaches(names.a, "fd66:0:0:2::2")).toBe(false);
  });
});
