/*
 * A container, its host and "the internet", each a namespace:
 *
 *   ┌─ <p>c ─────────┐      ┌─ <p>h ─────────────────────┐      ┌─ <p>i ──────────────┐
 *   │ eth0 10.66.5.2 ├──────┤ ct0 10.66.5.1/24            │      │                     │
 *   │ gw 10.66.5.1   │      │ ul0 192.168.91.1/24 ────────┼──────┤ ul0 192.168.91.2/24 │
 *   └────────────────┘      │ table ip weft (TrafficRules)│      │ no route to 10.66/16│
 *                           └─────────────────────────────┘      └─────────────────────┘
 * The internet namespace has no route back to the Network, so a reply reaches the container
 * only if the host masqueraded it; a UDP listener there reports the source address it saw.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, setSysctls, uniquePrefix } from "../../src/lab/netns.js";
import { runCommand } from "../../src/process/run-command.js";
import { sleep } from "../../src/async/sleep.js";
import { TrafficRules } from "../../src/host/firewall/traffic-rules.js";
import { renderRuleset } from "../../src/host/firewall/nft-ruleset.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { silentLogger } from "../../src/observe/logger.js";

const p = uniquePrefix("wf");
const [container, host, internet] = [`${p}c`, `${p}h`, `${p}i`];
const network = Ipv4Subnet.parse("10.66.0.0/16");
const ownSubnet = Ipv4Subnet.parse("10.66.5.0/24");

/** Sends one UDP datagram from the container to the internet namespace; returns the source address seen there. */
async function sourceSeenByInternet(): Promise<string | undefined> {
  const listener = runCommand("node", ["-e", `
    const s = require("node:dgram").createSocket("udp4");
    s.on("message", (m, r) => { console.log(r.address); process.exit(0); });
    s.bind(9999, "192.168.91.2");
    setTimeout(() => process.exit(3), 3000);`], { netns: internet, allowFailure: true });
  await udpPortBound(internet, 9999, listener);
  await execInNamespace(container, "node", ["-e", `
    const s = require("node:dgram").createSocket("udp4");
    s.send("x", 9999, "192.168.91.2", () => s.close());`]);
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

async function ping(): Promise<boolean> {
  const result = await execInNamespace(container, "ping", ["-c", "1", "-W", "1", "192.168.91.2"], { allowFailure: true });
  return result.exitCode === 0;
}

describe("TrafficRules (nftables table ip weft)", () => {
  const rules = new TrafficRules(silentLogger(), { netns: host });
  beforeAll(async () => {
    await Promise.all([createNamespace(container), createNamespace(host), createNamespace(internet)]);
    await createVethPair({ name: "eth0", namespace: container, addresses: ["10.66.5.2/24"] }, { name: "ct0", namespace: host, addresses: ["10.66.5.1/24"] });
    await createVethPair({ name: "ul0", namespace: host, addresses: ["192.168.91.1/24"] }, { name: "ul0", namespace: internet, addresses: ["192.168.91.2/24"] });
    await ipBatch(container, ["route add default via 10.66.5.1"]);
    await setSysctls(host, { "net.ipv4.ip_forward": "1" });
  });
  afterAll(async () => {
    await Promise.all([deleteNamespace(container), deleteNamespace(host), deleteNamespace(internet)]);
  });

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
