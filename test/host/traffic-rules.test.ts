/*
 * A container, its host and "the internet", each a namespace:
 *
 *   ┌─ <p>c ─────────────┐   ┌─ <p>h ──────────────────────┐   ┌─ <p>i ──────────────┐
 *   │ eth0 10.66.5.2     ├───┤ ct0 10.66.5.1/24            │   │                     │
 *   │      fd66:0:0:5::2 │   │     fd66:0:0:5::1/64        │   │                     │
 *   │ gw 10.66.5.1,      │   │ ul0 192.168.91.1/24 ────────┼───┤ ul0 192.168.91.2/24 │
 *   │    fd66:0:0:5::1   │   │     fd00:91::1/64           │   │     fd00:91::2/64   │
 *   └────────────────────┘   │ tables ip weft, ip6 weft    │   │ no route to 10.66/16│
 *                            └─────────────────────────────┘   │ nor to fd66::/48    │
 *                                                              └─────────────────────┘
 * The internet namespace has no route back to the Network (IPv4 or IPv6), so a reply reaches
 * the container only if the host masqueraded it; a UDP listener there reports the source
 * address it saw.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, setSysctls, uniquePrefix } from "../../src/lab/netns.js";
import { runCommand } from "../../src/process/run-command.js";
import { sleep } from "../../src/async/sleep.js";
import { TrafficRules } from "../../src/host/firewall/traffic-rules.js";
import { renderRuleset } from "../../src/host/firewall/nft-ruleset.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { silentLogger } from "../../src/observe/logger.js";
import { ipv6AddressesSettled } from "../support/ipv6-settled.js";

const p = uniquePrefix("wf");
const [container, host, internet] = [`${p}c`, `${p}h`, `${p}i`];
const network = Ipv4Subnet.parse("10.66.0.0/16");
const ownSubnet = Ipv4Subnet.parse("10.66.5.0/24");
const ipv6 = { network: Ipv6Subnet.parse("fd66::/48"), ownSubnet: Ipv6Subnet.parse("fd66:0:0:5::/64") };
const INTERNET = { 4: "192.168.91.2", 6: "fd00:91::2" } as const;

/** Sends one UDP datagram from the container to the internet namespace; returns the source address seen there. */
async function sourceSeenByInternet(family: 4 | 6 = 4): Promise<string | undefined> {
  const [socket, address] = [`udp${family}`, INTERNET[family]];
  const listener = runCommand("node", ["-e", `
    const s = require("node:dgram").createSocket("${socket}");
    s.on("message", (m, r) => { console.log(r.address); process.exit(0); });
    s.bind(9999, "${address}");
    setTimeout(() => process.exit(3), 3000);`], { netns: internet, allowFailure: true });
  await udpPortBound(internet, 9999, listener);
  await execInNamespace(container, "node", ["-e", `
    const s = require("node:dgram").createSocket("${socket}");
    s.send("x", 9999, "${address}", () => s.close());`]);
  const result = await listener;
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

/** Resolves once a UDP socket is bound to `port` in the namespace, or the listener has already ended. */
async function udpPortBound(namespace: string, port: number, listener: Promise<unknown>): Promise<void> {
  let ended = false;
  listener.then(
    () => (ended = true),
    () => (ended = true),
  );
  while (!ended) {
    const sockets = await execInNamespace(namespace, "ss", ["-H", "-u", "-a", "-n", `sport = :${port}`]);
    if (sockets.stdout.trim() !== "") return;
    await sleep(20);
  }
}

async function ping(family: 4 | 6 = 4): Promise<boolean> {
  const result = await execInNamespace(container, "ping", ["-c", "1", "-W", "1", INTERNET[family]], { allowFailure: true });
  return result.exitCode === 0;
}

async function tables(): Promise<string> {
  return (await execInNamespace(host, "nft", ["list", "tables"])).stdout;
}

const rules = new TrafficRules(silentLogger(), { netns: host });
beforeAll(async () => {
  await Promise.all([createNamespace(container), createNamespace(host), createNamespace(internet)]);
  await createVethPair({ name: "eth0", namespace: container, addresses: ["10.66.5.2/24", "fd66:0:0:5::2/64"] }, { name: "ct0", namespace: host, addresses: ["10.66.5.1/24", "fd66:0:0:5::1/64"] });
  await createVethPair({ name: "ul0", namespace: host, addresses: ["192.168.91.1/24", "fd00:91::1/64"] }, { name: "ul0", namespace: internet, addresses: ["192.168.91.2/24", "fd00:91::2/64"] });
  await ipBatch(container, ["route add default via 10.66.5.1", "route add ::/0 via fd66:0:0:5::1"]);
  await setSysctls(host, { "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1" });
  await Promise.all([container, host, internet].map((namespace) => ipv6AddressesSettled(namespace)));
});
afterAll(async () => {
  await Promise.all([deleteNamespace(container), deleteNamespace(host), deleteNamespace(internet)]);
});

describe("TrafficRules (nftables table ip weft)", () => {
  it("renders flannel's masquerade order and the forward accepts", () => {
    const script = renderRuleset({ network, ownSubnet, ipMasq: true, forwardRules: true });
    const rules = script.split("\n").map((line) => line.trim()).filter((line) => line.startsWith("ip ") || line.startsWith("meta"));
    expect(rules).toEqual([
      "ip saddr 10.66.0.0/16 accept",
      "ip daddr 10.66.0.0/16 accept",
      "meta mark & 0x00004000 == 0x00004000 return",
      "ip saddr 10.66.0.0/16 ip daddr 10.66.0.0/16 return",
      "ip saddr != 10.66.0.0/16 ip daddr 10.66.5.0/24 return",
      "ip saddr 10.66.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
      "ip saddr != 10.66.0.0/16 ip daddr 10.66.0.0/16 masquerade fully-random",
    ]);
    expect(renderRuleset({ network, ownSubnet, ipMasq: false, forwardRules: true })).not.toContain("postrouting");
  });

  it("without masquerade the internet cannot answer a container", async () => {
    await rules.apply({ network, ownSubnet, ipMasq: false, forwardRules: true });
    expect(await ping()).toBe(false);
  });

  it("with --ip-masq a container reaches the internet with the host's source address", async () => {
    await rules.apply({ network, ownSubnet, ipMasq: true, forwardRules: true });
    expect(await ping()).toBe(true);
    expect(await sourceSeenByInternet()).toBe("192.168.91.1");
  });

  it("verify() re-installs a deleted table or a flushed chain, and is quiet when intact", async () => {
    expect(await rules.verify()).toEqual({ repaired: false });
    await execInNamespace(host, "nft", ["delete", "table", "ip", "weft"]);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await ping()).toBe(true);
    await execInNamespace(host, "nft", ["flush", "chain", "ip", "weft", "postrouting"]);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await rules.verify()).toEqual({ repaired: false });
  });

  it("remove() deletes the table (and is idempotent)", async () => {
    await rules.remove();
    await rules.remove();
    const listed = await execInNamespace(host, "nft", ["list", "tables"]);
    expect(listed.stdout).not.toContain("weft");
  });
});

describe("TrafficRules on a dual-stack network (nftables table ip6 weft)", () => {
  const desired = { network, ownSubnet, ipMasq: true, forwardRules: true, ipv6 };

  it("renders flannel's masquerade order for IPv6, with ff00::/8 as the multicast range", () => {
    const script = renderRuleset({ ...ipv6, ipMasq: true, forwardRules: true });
    expect(script).toMatch(/^add table ip6 weft\ndelete table ip6 weft\ntable ip6 weft \{/);
    const lines = script.split("\n").map((line) => line.trim()).filter((line) => line.startsWith("ip6 ") || line.startsWith("meta"));
    expect(lines).toEqual([
      "ip6 saddr fd66::/48 accept",
      "ip6 daddr fd66::/48 accept",
      "meta mark & 0x00004000 == 0x00004000 return",
      "ip6 saddr fd66::/48 ip6 daddr fd66::/48 return",
      "ip6 saddr != fd66::/48 ip6 daddr fd66:0:0:5::/64 return",
      "ip6 saddr fd66::/48 ip6 daddr != ff00::/8 masquerade fully-random",
      "ip6 saddr != fd66::/48 ip6 daddr fd66::/48 masquerade fully-random",
    ]);
    expect(() => renderRuleset({ network: ipv6.network, ownSubnet, ipMasq: true, forwardRules: true })).toThrow(/own subnet 10\.66\.5\.0\/24 is not of the family of Network fd66::\/48/);
  });

  it("without ipv6 no ip6 table is installed and IPv6 containers are not masqueraded", async () => {
    await rules.apply({ ...desired, ipv6: undefined });
    expect(await tables()).toContain("table ip weft");
    expect(await tables()).not.toContain("table ip6 weft");
    expect(await ping(6)).toBe(false);
    expect(await ping(4)).toBe(true);
  });

  it("with ipv6 a container reaches the IPv6 internet with the host's IPv6 address, IPv4 unchanged", async () => {
    await rules.apply(desired);
    expect(await tables()).toContain("table ip6 weft");
    expect(await ping(6)).toBe(true);
    expect(await sourceSeenByInternet(6)).toBe("fd00:91::1");
    expect(await sourceSeenByInternet(4)).toBe("192.168.91.1");
  });

  it("verify() re-installs a deleted ip6 table or a flushed IPv6 chain, leaves the IPv4 table alone, and is quiet when intact", async () => {
    expect(await rules.verify()).toEqual({ repaired: false });
    const ipv4Table = (await execInNamespace(host, "nft", ["list", "table", "ip", "weft"])).stdout;
    await execInNamespace(host, "nft", ["delete", "table", "ip6", "weft"]);
    expect(await ping(6)).toBe(false);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await ping(6)).toBe(true);
    await execInNamespace(host, "nft", ["flush", "chain", "ip6", "weft", "postrouting"]);
    expect(await rules.verify()).toEqual({ repaired: true });
    expect(await rules.verify()).toEqual({ repaired: false });
    expect((await execInNamespace(host, "nft", ["list", "table", "ip", "weft"])).stdout).toBe(ipv4Table);
  });

  it("a later apply without ipv6 removes the ip6 table; remove() deletes both tables", async () => {
    await rules.apply({ ...desired, ipv6: undefined });
    expect(await tables()).not.toContain("table ip6 weft");
    await rules.apply(desired);
    await rules.remove();
    expect(await tables()).not.toContain("weft");
    expect(await ping(6)).toBe(false);
  });
});
