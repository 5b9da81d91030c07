/*
 * Kernel vxlan on a dual-stack network: three dual-stack hosts and one IPv4-only host on one
 * bridge (see dual-stack-topology.ts for the picture; h4 is built the same but runs a
 * single-stack network config and leases no IPv6 subnet):
 *
 *   h1, h2, h3: flannel.1 over 192.168.97.0/24 and flannel-v6.1 over fd00:97::/64
 *   h4:         flannel.1 only
 *
 * Each backend runs in this process against its host's namespace; the test hands every host
 * the others' leases as the watcher would. Containers ping each other over both families.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createNamespace, createVethPair, deleteNamespace, ipBatch, uniquePrefix } from "../../src/lab/netns.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { VxlanBackend } from "../../src/backend/vxlan/vxlan-backend.js";
import type { BackendContext } from "../../src/backend/backend.js";
import { formatReconcileReport } from "../../src/backend/reconcile-report.js";
import { DUAL_STACK, backendContext, lease } from "./kernel-fixtures.js";
import {
  buildDualStackTopology, peerEventsFor, pings, show, startBackend,
  type DualStackHost, type DualStackTopology, type RunningHost as Running,
} from "./dual-stack-topology.js";
import { ipv6AddressesSettled } from "../support/ipv6-settled.js";

const p = uniquePrefix("wv6");
const UNDERLAY = 97;

type RunningHost = Running<VxlanBackend>;

function vtepMac(data: unknown): string {
  return (data as { VtepMAC: string }).VtepMAC;
}

describe("kernel vxlan backend, dual-stack (flannel-v6.<VNI>)", () => {
  let topology: DualStackTopology;
  const running: RunningHost[] = [];
  const h = (index: number) => running[index - 1] as RunningHost;

  const start = (host: DualStackHost, dualStack: boolean, context?: BackendContext) =>
    startBackend(host, { Type: "vxlan" }, dualStack, (ctx, kernel) => new VxlanBackend(ctx, kernel), context);
  const peerEvents = (self: RunningHost) => peerEventsFor(self, running);

  beforeAll(async () => {
    topology = await buildDualStackTopology(p, 4, UNDERLAY);
    for (const host of topology.hosts) running.push(await start(host, host.index !== 4));
    for (const self of running) await self.backend.applyPeers(peerEvents(self));
    await Promise.all(topology.hosts.map((host) => ipv6AddressesSettled(host.namespace)));
  });
  afterAll(async () => {
    await Promise.all(running.map((self) => self.backend.stop()));
    await topology?.teardown();
  });

  it("register() creates flannel-v6.1 over the IPv6 underlay with its own persisted MAC and advertises it in BackendV6Data", async () => {
    const { host, lease: own, context } = h(1);
    const v4 = vtepMac(own.attrs.backendData);
    const v6 = vtepMac(own.attrs.backendV6Data);
    expect(JSON.stringify(own.attrs.backendV6Data)).toMatch(/^\{"VNI":1,"VtepMAC":"[0-9a-f]{2}(:[0-9a-f]{2}){5}"\}$/);
    expect(v6).not.toBe(v4);
    expect(parseInt(v6.slice(0, 2), 16) & 3).toBe(2); // locally administered, unicast
    const details = await show(host.namespace, "ip", "-d", "link", "show", "flannel-v6.1");
    expect(details).toContain(`vxlan id 1 local ${host.addressV6} dev ul0`);
    expect(details).toContain("dstport 8472 nolearning");
    // flannel asks for E − 50 here too, and the kernel clamps a vxlan over IPv6 to E − 70.
    expect(details).toContain("mtu 1430");
    // FLANNEL_MTU is the smaller device's, so containers' packets fit either tunnel; IPv4-only: E − 50.
    expect(h(1).mtu).toBe(1430);
    expect(h(4).mtu).toBe(1450);
    expect(details).toContain(v6);
    expect((await readFile(join(context.stateDir, "flannel-v6.1.vtep-mac"), "utf8")).trim()).toBe(v6);
    for (const device of ["flannel.1", "flannel-v6.1"]) {
      expect((await show(host.namespace, "sysctl", "-n", `net/ipv6/conf/${device}/accept_ra`)).trim()).toBe("0");
    }
    // The own IPv6 subnet's network address /128 is flannel-v6.1's only address inside IPv6Network.
    const addresses = await show(host.namespace, "ip", "-6", "addr", "show", "dev", "flannel-v6.1", "scope", "global");
    expect(addresses).toContain("inet6 fd66:0:0:1::/128");
    expect(addresses.match(/inet6 /g)?.length).toBe(1);
    // The single-stack host has no flannel-v6 device and advertises no BackendV6Data.
    expect(h(4).lease.attrs.backendV6Data).toBeUndefined();
    expect(await show(h(4).host.namespace, "ip", "link", "show")).not.toContain("flannel-v6");
  });

  it("programs a dual-stack peer's IPv6 neighbour, FDB entry and onlink route as flanneld does", async () => {
    const ns = h(1).host.namespace;
    const mac2 = vtepMac(h(2).lease.attrs.backendV6Data);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:2::/64")).toMatch(/^fd66:0:0:2::\/64 via fd66:0:0:2:: dev flannel-v6\.1 metric 1024 onlink/);
    expect(await show(ns, "ip", "-6", "neigh", "show", "dev", "flannel-v6.1")).toContain(`fd66:0:0:2:: lladdr ${mac2} PERMANENT`);
    expect(await show(ns, "bridge", "fdb", "show", "dev", "flannel-v6.1")).toContain(`${mac2} dst fd00:${UNDERLAY}::12 self permanent`);
    // IPv4 goes on as before, through flannel.1 and the IPv4 underlay.
    expect(await show(ns, "bridge", "fdb", "show", "dev", "flannel.1")).toContain(`${vtepMac(h(2).lease.attrs.backendData)} dst 192.168.${UNDERLAY}.12 self permanent`);
  });

  it("containers reach each other over IPv6 and IPv4 between all three dual-stack hosts", async () => {
    const failures: string[] = [];
    for (const from of running.slice(0, 3)) {
      for (const to of running.slice(0, 3)) {
        if (from === to) continue;
        if (!(await pings(from.host.container, to.host.containerAddressV6))) failures.push(`v6 ${from.host.index}→${to.host.index}`);
        if (!(await pings(from.host.container, to.host.containerAddress))) failures.push(`v4 ${from.host.index}→${to.host.index}`);
      }
      // The hosts' own overlay addresses too (the /128 and /32 on the devices).
      if (!(await pings(from.host.namespace, h(from.host.index === 1 ? 2 : 1).lease.ipv6Subnet?.toString().split("/")[0] as string, { source: `fd66:0:0:${from.host.index}::` }))) {
        failures.push(`v6 host ${from.host.index} overlay address`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("IPv6 traffic really crosses flannel-v6.1 (its tx counter grows with a ping)", async () => {
    const txPackets = async () => Number((await show(h(1).host.namespace, "cat", "/sys/class/net/flannel-v6.1/statistics/tx_packets")).trim());
    const before = await txPackets();
    expect(await pings(h(1).host.container, h(3).host.containerAddressV6)).toBe(true);
    expect(await txPackets()).toBeGreaterThan(before);
  });

  it("the largest don't-fragment ping per family fits the device MTU exactly (1430 over IPv6, 1450 over IPv4)", async () => {
    // The containers' eth0 is 1500 here, so each tunnel's own limit shows (in a lab, FLANNEL_MTU 1430 caps both).
    const [from, to] = [h(1).host.container, h(2).host];
    // ICMPv6 echo: IPv6 header 40 + ICMPv6 8 bytes; ICMP echo: IPv4 20 + 8.
    expect(await pings(from, to.containerAddressV6, { size: 1430 - 48 })).toBe(true);
    expect(await pings(from, to.containerAddressV6, { size: 1430 - 47 })).toBe(false);
    expect(await pings(from, to.containerAddress, { size: 1450 - 28 })).toBe(true);
    expect(await pings(from, to.containerAddress, { size: 1450 - 27 })).toBe(false);
  });

  it("a single-stack peer gets IPv4 only, and reaches dual-stack containers over IPv4", async () => {
    const ns = h(1).host.namespace;
    expect(await show(ns, "ip", "route", "show", "10.66.4.0/24")).toContain("10.66.4.0/24 via 10.66.4.0 dev flannel.1 onlink");
    expect(await show(ns, "ip", "-6", "route", "show", "dev", "flannel-v6.1")).not.toContain("fd66:0:0:4::");
    expect(await show(ns, "bridge", "fdb", "show", "dev", "flannel-v6.1")).not.toContain(`fd00:${UNDERLAY}::14`);
    expect(await pings(h(1).host.container, h(4).host.containerAddress)).toBe(true);
    expect(await pings(h(4).host.container, h(2).host.containerAddress)).toBe(true);
    // The single-stack host ignores the IPv6 half of the dual-stack leases.
    expect(await show(h(4).host.namespace, "ip", "-6", "route", "show")).not.toMatch(/fd66:0:0:[123]::/);
    expect((await h(4).backend.reconcile({ dryRun: true })).changes).toEqual([]);
  });

  it("reconcile repairs a deleted IPv6 neighbour, FDB entry and route; a dry run names each and changes nothing", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    const mac2 = vtepMac(h(2).lease.attrs.backendV6Data);
    expect((await self.backend.reconcile({ dryRun: true })).changes).toEqual([]);
    await ipBatch(ns, [
      "route del fd66:0:0:2::/64",
      "neigh del fd66:0:0:2:: dev flannel-v6.1",
    ]);
    await show(ns, "bridge", "fdb", "del", mac2, "dev", "flannel-v6.1", "dst", `fd00:${UNDERLAY}::12`, "self");
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(false);
    const dry = formatReconcileReport(await self.backend.reconcile({ dryRun: true }));
    expect(dry.changes.sort()).toEqual([
      `add fdb ${mac2} dev flannel-v6.1 dst fd00:${UNDERLAY}::12 self permanent`,
      `add neigh fd66:0:0:2:: lladdr ${mac2} dev flannel-v6.1 permanent`,
      "add route fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink",
    ]);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:2::/64")).toBe("");
    await self.backend.reconcile({ dryRun: false });
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(true);
    expect((await self.backend.reconcile({ dryRun: true })).changes).toEqual([]);
  });

  it("reconcile removes IPv6 state no lease backs, and leaves routes outside IPv6Network alone", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    await ipBatch(ns, [
      "neigh replace fd66:0:0:77:: lladdr 02:77:77:77:77:77 dev flannel-v6.1 nud permanent",
      "route replace fd66:0:0:77::/64 via fd66:0:0:77:: dev flannel-v6.1 onlink",
      "route replace fd99::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink", // not inside fd66::/48: someone else's
    ]);
    const report = formatReconcileReport(await self.backend.reconcile({ dryRun: false }));
    expect(report.changes.sort()).toEqual([
      "remove neigh fd66:0:0:77:: lladdr 02:77:77:77:77:77 dev flannel-v6.1 permanent",
      "remove route fd66:0:0:77::/64 via fd66:0:0:77:: dev flannel-v6.1 onlink",
    ]);
    expect(await show(ns, "ip", "-6", "route", "show", "fd99::/64")).toContain("fd99::/64 via fd66:0:0:2::");
    await ipBatch(ns, ["route del fd99::/64"]);
    expect(report.desired).toContain("route fd66:0:0:3::/64 via fd66:0:0:3:: dev flannel-v6.1 onlink");
    expect(report.actual).toContain("route fd66:0:0:3::/64 via fd66:0:0:3:: dev flannel-v6.1 onlink");
  });

  it("reconcile puts back flannel-v6.1's /128, MTU and accept_ra 0, and drops a stray address inside IPv6Network", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    await ipBatch(ns, ["addr del fd66:0:0:1::/128 dev flannel-v6.1", "addr add fd66:0:0:99::5/128 dev flannel-v6.1 nodad", "link set dev flannel-v6.1 mtu 1300"]);
    await show(ns, "sysctl", "-q", "-w", "net/ipv6/conf/flannel-v6.1/accept_ra=1");
    const dry = formatReconcileReport(await self.backend.reconcile({ dryRun: true }));
    expect(dry.changes.sort()).toEqual([
      "add address fd66:0:0:1::/128 to flannel-v6.1",
      "remove address fd66:0:0:99::5/128 from flannel-v6.1",
      "set flannel-v6.1 mtu 1430 (was 1300)",
      "set net.ipv6.conf.flannel-v6.1.accept_ra 0 (was 1)",
    ]);
    await self.backend.reconcile({ dryRun: false });
    const addresses = await show(ns, "ip", "-6", "addr", "show", "dev", "flannel-v6.1", "scope", "global");
    expect(addresses).toContain("fd66:0:0:1::/128");
    expect(addresses).not.toContain("fd66:0:0:99::5");
    expect(await show(ns, "ip", "link", "show", "flannel-v6.1")).toContain("mtu 1430");
    expect((await show(ns, "sysctl", "-n", "net/ipv6/conf/flannel-v6.1/accept_ra")).trim()).toBe("0");
    await ipv6AddressesSettled(ns);
    expect((await self.backend.reconcile({ dryRun: false })).changes).toEqual([]);
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(true);
  });

  it("a deleted flannel-v6.1 is recreated by reconcile with the same MAC, address and peer entries", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    const mac = vtepMac(self.lease.attrs.backendV6Data);
    await ipBatch(ns, ["link del flannel-v6.1"]);
    const dry = formatReconcileReport(await self.backend.reconcile({ dryRun: true }));
    // Only flannel-v6.1 and its objects would be made: flannel.1's are in place.
    expect(dry.changes.sort()).toEqual([
      `add fdb ${vtepMac(h(2).lease.attrs.backendV6Data)} dev flannel-v6.1 dst fd00:${UNDERLAY}::12 self permanent`,
      `add fdb ${vtepMac(h(3).lease.attrs.backendV6Data)} dev flannel-v6.1 dst fd00:${UNDERLAY}::13 self permanent`,
      `add neigh fd66:0:0:2:: lladdr ${vtepMac(h(2).lease.attrs.backendV6Data)} dev flannel-v6.1 permanent`,
      `add neigh fd66:0:0:3:: lladdr ${vtepMac(h(3).lease.attrs.backendV6Data)} dev flannel-v6.1 permanent`,
      "add route fd66:0:0:2::/64 via fd66:0:0:2:: dev flannel-v6.1 onlink",
      "add route fd66:0:0:3::/64 via fd66:0:0:3:: dev flannel-v6.1 onlink",
      `create device flannel-v6.1 (vxlan id 1, MAC ${mac})`,
    ].sort());
    await self.backend.reconcile({ dryRun: false });
    expect(await show(ns, "ip", "link", "show", "flannel-v6.1")).toContain(mac);
    expect(await show(ns, "ip", "-6", "addr", "show", "dev", "flannel-v6.1")).toContain("fd66:0:0:1::/128");
    await ipv6AddressesSettled(ns);
    expect(await pings(self.host.container, h(3).host.containerAddressV6)).toBe(true);
    expect(await pings(self.host.container, h(3).host.containerAddress)).toBe(true);
    expect((await self.backend.reconcile({ dryRun: false })).changes).toEqual([]);
  });

  it("a restart is hitless for IPv6: stop() leaves flannel-v6.1 and its entries, a new instance keeps the MAC", async () => {
    const self = h(1);
    const before = vtepMac(self.lease.attrs.backendV6Data);
    await self.backend.stop();
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(true);
    const again = await start(self.host, true, self.context);
    expect(vtepMac(again.lease.attrs.backendV6Data)).toBe(before);
    running[0] = again;
    await again.backend.applyPeers(peerEvents(again));
    expect((await again.backend.reconcile({ dryRun: true })).changes).toEqual([]);
    expect(await pings(again.host.container, h(2).host.containerAddressV6)).toBe(true);
  });

  it("a removed dual-stack lease takes its IPv6 objects with it; re-adding restores them", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    const peer = h(3).lease;
    await self.backend.applyPeers([{ kind: "removed", lease: peer }]);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:3::/64")).toBe("");
    expect(await show(ns, "ip", "-6", "neigh", "show", "dev", "flannel-v6.1")).not.toContain("fd66:0:0:3::");
    expect(await show(ns, "bridge", "fdb", "show", "dev", "flannel-v6.1")).not.toContain(`fd00:${UNDERLAY}::13`);
    expect(await show(ns, "ip", "route", "show", "10.66.3.0/24")).toBe("");
    await self.backend.applyPeers([{ kind: "added", lease: peer }]);
    expect(await pings(self.host.container, h(3).host.containerAddressV6)).toBe(true);
  });

  it("programs 1000 dual-stack peer leases (6000 kernel objects) through the batch processes and removes them again", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    const hex = (n: number) => n.toString(16).padStart(2, "0");
    const peers = Array.from({ length: 1000 }, (_, i) =>
      lease(
        `10.66.${Math.floor(i / 4) + 5}.${(i % 4) * 64}/26`,
        {
          publicIP: `192.168.${UNDERLAY}.${30 + (i % 200)}`,
          publicIPv6: `fd00:${UNDERLAY}::${(0x1000 + i).toString(16)}`,
          backendType: "vxlan",
          backendData: { VNI: 1, VtepMAC: `02:aa:00:00:${hex(i >> 8)}:${hex(i & 255)}` },
          backendV6Data: { VNI: 1, VtepMAC: `02:bb:00:00:${hex(i >> 8)}:${hex(i & 255)}` },
        },
        `fd66:0:0:${(0x100 + i).toString(16)}::/64`,
      ),
    );
    const v6Routes = async () => (await show(ns, "ip", "-6", "route", "show", "dev", "flannel-v6.1")).split("\n").filter((line) => /^fd66:0:0:[1-4][0-9a-f]{2}::\/64 /.test(line)).length;
    const started = performance.now();
    await self.backend.applyPeers(peers.map((peer) => ({ kind: "added" as const, lease: peer })));
    const ms = performance.now() - started;
    console.log(`vxlan dual-stack: 1000 dual-stack peer leases (3000 IPv4 + 3000 IPv6 objects) programmed in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(10_000); // a bound only per-object processes exceed, as in vxlan.test.ts
    expect(await v6Routes()).toBe(1000);
    expect((await show(ns, "bridge", "fdb", "show", "dev", "flannel-v6.1")).split("\n").filter((line) => line.startsWith("02:bb:")).length).toBe(1000);
    const reconcileStarted = performance.now();
    expect((await self.backend.reconcile({ dryRun: true })).changes).toEqual([]);
    console.log(`vxlan dual-stack: reconcile (dry run) over 6000+ objects in ${(performance.now() - reconcileStarted).toFixed(0)} ms`);
    const removeStarted = performance.now();
    await self.backend.applyPeers(peers.map((peer) => ({ kind: "removed" as const, lease: peer })));
    console.log(`vxlan dual-stack: 1000 dual-stack peer leases removed in ${(performance.now() - removeStarted).toFixed(0)} ms`);
    expect(await v6Routes()).toBe(0);
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(true);
  });

  it("a lease with an IPv6 subnet but unusable BackendV6Data or PublicIPv6 is refused, naming the field", async () => {
    const self = h(1);
    const attrs = { publicIP: `192.168.${UNDERLAY}.20`, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "02:20:20:20:20:20" } };
    const noData = lease("10.66.20.0/24", { ...attrs, publicIPv6: `fd00:${UNDERLAY}::20` }, "fd66:0:0:20::/64");
    const badMac = lease("10.66.21.0/24", { ...attrs, publicIP: `192.168.${UNDERLAY}.21`, publicIPv6: `fd00:${UNDERLAY}::21`, backendV6Data: { VNI: 1, VtepMAC: "nope" } }, "fd66:0:0:21::/64");
    const noPublic = lease("10.66.22.0/24", { ...attrs, publicIP: `192.168.${UNDERLAY}.22`, backendV6Data: { VNI: 1, VtepMAC: "02:22:22:22:22:22" } }, "fd66:0:0:22::/64");
    await self.backend.applyPeers([noData, badMac, noPublic].map((peer) => ({ kind: "added" as const, lease: peer })));
    const refused = self.backend.refusedPeers().sort();
    expect(refused).toEqual([
      expect.stringMatching(/^10\.66\.20\.0\/24,fd66:0:0:20::\/64: unusable vxlan BackendV6Data: .*BackendV6Data undefined is not an object/),
      expect.stringMatching(/^10\.66\.21\.0\/24,fd66:0:0:21::\/64: unusable vxlan BackendV6Data: .*BackendV6Data\.VtepMAC/),
      expect.stringMatching(/^10\.66\.22\.0\/24,fd66:0:0:22::\/64: .*has the IPv6 subnet fd66:0:0:22::\/64 but no PublicIPv6/),
    ]);
    expect(await show(self.host.namespace, "ip", "route", "show", "10.66.20.0/24")).toBe("");
    await self.backend.applyPeers([noData, badMac, noPublic].map((peer) => ({ kind: "removed" as const, lease: peer })));
  });

  it("a dual-stack network without an IPv6 address on the external interface fails with a clear error", async () => {
    const context = await backendContext({ Type: "vxlan" }, { name: "ul0", address: h(1).host.address }, undefined, DUAL_STACK);
    expect(() => new VxlanBackend(context, new Kernel(h(1).host.namespace))).toThrow(/dual-stack \(EnableIPv6\) but the external interface ul0 has no IPv6 address for flannel-v6\.1/);
  });
});

/*
 *   ┌─ <q>a ─────────────────────────────────────────┐
 *   │ ul0 192.168.98.1/24 fd00:98::1/64 ── ul1       │
 *   │ fd00:3000::/32 via fd00:98::fe (not on-link)   │
 *   └────────────────────────────────────────────────┘
 */
describe("kernel vxlan backend, dual-stack with DirectRouting", () => {
  const q = uniquePrefix("wd6");
  const ns = `${q}a`;
  let backend: VxlanBackend;
  beforeAll(async () => {
    await createNamespace(ns);
    await createVethPair({ name: "ul0", namespace: ns, addresses: ["192.168.98.1/24", "fd00:98::1/64"] }, { name: "ul1", namespace: ns });
    await ipv6AddressesSettled(ns);
    await ipBatch(ns, ["route add fd00:3000::/32 via fd00:98::fe"]);
    const context = await backendContext({ Type: "vxlan", DirectRouting: true }, { name: "ul0", address: "192.168.98.1", addressV6: "fd00:98::1" }, undefined, DUAL_STACK);
    backend = new VxlanBackend(context, new Kernel(ns));
  });
  afterAll(async () => {
    await backend?.stop();
    await deleteNamespace(ns);
  });

  it("routes an on-link IPv6 peer via its PublicIPv6 and an off-link one through flannel-v6.1", async () => {
    const registration = await backend.register();
    await backend.activate(lease("10.66.1.0/24", { publicIP: "192.168.98.1", publicIPv6: "fd00:98::1", ...registration.attrs }, "fd66:0:0:1::/64"));
    const data = (mac: string) => ({ VNI: 1, VtepMAC: mac });
    await backend.applyPeers([
      { kind: "added", lease: lease("10.66.7.0/24", { publicIP: "192.168.98.7", publicIPv6: "fd00:98::7", backendType: "vxlan", backendData: data("02:00:00:00:00:07"), backendV6Data: data("02:00:00:00:06:07") }, "fd66:0:0:7::/64") },
      // Written uncompressed: the backend compares canonical (RFC 5952) text with what the kernel reports.
      { kind: "added", lease: lease("10.66.8.0/24", { publicIP: "192.168.98.8", publicIPv6: "fd00:3000:0:0:0:0:0:8", backendType: "vxlan", backendData: data("02:00:00:00:00:08"), backendV6Data: data("02:00:00:00:06:08") }, "fd66:0:0:8::/64") },
    ]);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:7::/64")).toContain("fd66:0:0:7::/64 via fd00:98::7 dev ul0");
    expect(await show(ns, "ip", "route", "show", "10.66.7.0/24")).toContain("10.66.7.0/24 via 192.168.98.7 dev ul0");
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:8::/64")).toMatch(/^fd66:0:0:8::\/64 via fd66:0:0:8:: dev flannel-v6\.1 .*onlink/);
    expect(await show(ns, "bridge", "fdb", "show", "dev", "flannel-v6.1")).toContain("02:00:00:00:06:08 dst fd00:3000::8 self permanent");
    expect(await show(ns, "ip", "-6", "neigh", "show", "dev", "flannel-v6.1")).not.toContain("fd66:0:0:7::");
    expect((await backend.reconcile({ dryRun: true })).changes).toEqual([]);
    await ipBatch(ns, ["route del fd66:0:0:7::/64"]);
    expect(formatReconcileReport(await backend.reconcile({ dryRun: false })).changes).toEqual(["add route fd66:0:0:7::/64 via fd00:98::7 dev ul0"]);
  });
});
