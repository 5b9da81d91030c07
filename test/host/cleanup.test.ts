/*
 * One host namespace holding what a stopped weft daemon leaves behind:
 *
 *   ┌─ <p>h ───────────────────────────────────────────────────────────┐
 *   │ ul0 192.168.95.1/24        ct0 10.66.1.1/24 (docker0's subnet)    │
 *   │     fd00:95::1/64                                                 │
 *   │ flannel.1, flannel.7 (vxlan) with neigh/fdb/onlink routes         │
 *   │ flannel-v6.1 (vxlan over IPv6) with an IPv6 neigh/onlink route    │
 *   │ 10.66.4.0/24 via 192.168.95.4 (host-gw)   tables ip/ip6 weft (nft)│
 *   │ fd66:0:0:4::/64 via fd00:95::4 (host-gw, IPv6)                    │
 *   │ 172.16.0.0/16 via 192.168.95.254 (not weft's: must stay)          │
 *   └───────────────────────────────────────────────────────────────────┘
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, uniquePrefix } from "../../src/lab/netns.js";
import { cleanupHost } from "../../src/commands/cleanup.js";
import { TrafficRules } from "../../src/host/firewall/traffic-rules.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { silentLogger } from "../../src/observe/logger.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parkFds } from "../../src/engine/handover/fd-handover.js";
import { writeSnapshot } from "../../src/backend/userspace/datapath-snapshot.js";
import { closeFds } from "../../src/engine/handover/fd-handover.js";
import { isAlive } from "../../src/process/pids.js";

const ns = `${uniquePrefix("wc")}h`;
const network = Ipv4Subnet.parse("10.66.0.0/16");
const ownSubnet = Ipv4Subnet.parse("10.66.1.0/24");
const ipv6 = { network: Ipv6Subnet.parse("fd66::/48"), ownSubnet: Ipv6Subnet.parse("fd66:0:0:1::/64") };

async function leave(): Promise<void> {
  await ipBatch(ns, [
    "link add flannel.1 type vxlan id 1 local 192.168.95.1 dev ul0 dstport 8472 nolearning",
    "link add flannel.7 type vxlan id 7 local 192.168.95.1 dev ul0 dstport 8472 nolearning",
    "link set flannel.1 up",
    "link set flannel.7 up",
    "neigh replace 10.66.2.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent",
    "route replace 10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink",
    "route replace 10.66.4.0/24 via 192.168.95.4 dev ul0",
    "route replace fd66:0:0:4::/64 via fd00:95::4 dev ul0",
    "link add flannel-v6.1 type vxlan id 1 local fd00:95::1 dev ul0 dstport 8472 nolearning",
    "link set flannel-v6.1 up",
    "neigh replace fd66:0:0:2:: lladdr 02:00:00:00:06:02 dev flannel-v6.1 nud permanent",
    "route replace fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink",
  ]);
  await new TrafficRules(silentLogger(), { netns: ns }).apply({ network, ownSubnet, ipMasq: true, forwardRules: true, ipv6 });
}

async function state(): Promise<string> {
  const [links, routes, routesV6, tables] = await Promise.all([
    execInNamespace(ns, "ip", ["-o", "link", "show"]),
    execInNamespace(ns, "ip", ["route", "show"]),
    execInNamespace(ns, "ip", ["-6", "route", "show"]),
    execInNamespace(ns, "nft", ["list", "tables"]),
  ]);
  return `${links.stdout}\n${routes.stdout}\n${routesV6.stdout}\n${tables.stdout}`;
}

describe("weft cleanup", () => {
  beforeAll(async () => {
    await createNamespace(ns);
    await createVethPair({ name: "ul0", namespace: ns, addresses: ["192.168.95.1/24", "fd00:95::1/64"] }, { name: "ul1", namespace: ns });
    await createVethPair({ name: "ct0", namespace: ns, addresses: ["10.66.1.1/24"] }, { name: "ct1", namespace: ns });
    await ipBatch(ns, ["route add 172.16.0.0/16 via 192.168.95.254"]);
  });
  afterAll(async () => {
    await deleteNamespace(ns);
  });

  it("dry run lists everything and removes nothing", async () => {
    await leave();
    const lines = await cleanupHost({ network, ownSubnet, ipv6Network: ipv6.network, ownIpv6Subnet: ipv6.ownSubnet, dryRun: true, netns: ns });
    expect(lines).toEqual(expect.arrayContaining([
      "remove nftables tables ip weft and ip6 weft and the iptables and ip6tables WEFT-FWD chains with their jumps (if present)",
      expect.stringMatching(/^remove device flannel\.1 /),
      expect.stringMatching(/^remove device flannel-v6\.1 /),
      expect.stringMatching(/^remove device flannel\.7 /),
      "remove route 10.66.4.0/24 via 192.168.95.4 dev ul0",
      "remove route fd66:0:0:4::/64 via fd00:95::4 dev ul0",
    ]));
    expect(await state()).toContain("flannel.7");
    expect(await state()).toContain("table ip6 weft");
  });

  it("removes devices (with their entries), gateway routes in the Network and the nft table; keeps the rest", async () => {
    await cleanupHost({ network, ownSubnet, ipv6Network: ipv6.network, ownIpv6Subnet: ipv6.ownSubnet, dryRun: false, netns: ns });
    const after = await state();
    expect(after).not.toMatch(/flannel\.|flannel-v6|10\.66\.2\.0|10\.66\.4\.0|fd66:0:0:[24]::|table ip weft|table ip6 weft/);
    expect(after).toContain("10.66.1.0/24 dev ct0");
    expect(after).toContain("172.16.0.0/16 via 192.168.95.254");
  });

  it("--vni limits which devices go; the CLI runs it in the host", async () => {
    await leave();
    const result = await execInNamespace(ns, process.execPath, [weftCliPath(), "cleanup", "--vni", "7", "--network", "10.66.0.0/16", "--subnet-file", "/nonexistent/subnet.env"]);
    expect(result.stdout).toContain("remove device flannel.7");
    const after = await state();
    expect(after).toContain("flannel.1");
    expect(after).not.toContain("flannel.7");
    expect(after).not.toContain("table ip weft");
  });

  it("removes a userspace backend's persistent TUN, stops its fd holder and removes the data path snapshot", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "weft-cleanup-"));
    try {
      // flannel0 by weft's name, wtun9 by the snapshot's; "other0" is someone else's and stays.
      await ipBatch(ns, ["tuntap add dev flannel0 mode tun", "tuntap add dev wtun9 mode tun", "tuntap add dev other0 mode tun", "link set wtun9 up"]);
      await ipBatch(ns, ["route replace 10.66.0.0/16 dev wtun9"]);
      await writeSnapshot(stateDir, { backend: "udp", device: "wtun9", engine: { mode: "udp", tunName: "wtun9", mtu: 1472, bindAddress: "192.168.95.1" }, peers: [] });
      const fd = openSync("/dev/null", "r");
      const holder = await parkFds(stateDir, [fd], 60_000);
      closeFds([fd]);
      expect(isAlive(holder.pid)).toBe(true);
      const dry = await cleanupHost({ dryRun: true, netns: ns, stateDir });
      expect(dry).toEqual(expect.arrayContaining([
        `stop the fd holder (pid ${holder.pid}) keeping a stopped daemon's TUN and sockets open`,
        expect.stringMatching(/^remove persistent TUN device flannel0 /),
        expect.stringMatching(/^remove persistent TUN device wtun9 /),
        `remove ${join(stateDir, "datapath.json")}`,
      ]));
      expect(dry.join("\n")).not.toContain("other0");
      expect(isAlive(holder.pid)).toBe(true);
      await cleanupHost({ dryRun: false, netns: ns, stateDir });
      const started = Date.now();
      while (isAlive(holder.pid) && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(isAlive(holder.pid)).toBe(false);
      const after = await state();
      expect(after, after).not.toMatch(/flannel0|wtun9/);
      expect(after).toContain("other0");
      expect(await readdir(stateDir)).toEqual([]);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
