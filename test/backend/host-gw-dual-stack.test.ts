/*
 * host-gw on a dual-stack network: the topology of dual-stack-topology.ts on 192.168.99.0/24
 * and fd00:99::/64, hosts h1..h3 dual-stack, h4 single-stack (IPv4 config, no IPv6 lease):
 *
 *   h1 ── h2 ── h3 ── h4 on one bridge; h1 also has fd00:4000::/32 via fd00:99::fe (off-link)
 *
 * Every host routes each peer's IPv4 subnet via its PublicIP and, when both are dual-stack,
 * its IPv6 subnet via its PublicIPv6, on ul0. Containers ping across both families.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ipBatch, uniquePrefix } from "../../src/lab/netns.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { HostGwBackend } from "../../src/backend/host-gw/host-gw-backend.js";
import { formatReconcileReport } from "../../src/backend/reconcile-report.js";
import { DUAL_STACK, backendContext, lease } from "./kernel-fixtures.js";
import { buildDualStackTopology, peerEventsFor, pings, show, startBackend, type DualStackTopology, type RunningHost as Running } from "./dual-stack-topology.js";

const p = uniquePrefix("wh6");
const UNDERLAY = 99;

type RunningHost = Running<HostGwBackend>;

describe("host-gw backend, dual-stack", () => {
  let topology: DualStackTopology;
  const running: RunningHost[] = [];
  const h = (index: number) => running[index - 1] as RunningHost;

  beforeAll(async () => {
    topology = await buildDualStackTopology(p, 4, UNDERLAY);
    for (const host of topology.hosts) {
      running.push(await startBackend(host, { Type: "host-gw" }, host.index !== 4, (context, kernel) => new HostGwBackend(context, kernel)));
    }
    await ipBatch(h(1).host.namespace, [`route add fd00:4000::/32 via fd00:${UNDERLAY}::fe`]);
    for (const self of running) await self.backend.applyPeers(peerEventsFor(self, running));
  });
  afterAll(async () => {
    await Promise.all(running.map((self) => self.backend.stop()));
    await topology?.teardown();
  });

  it("routes each dual-stack peer's IPv6 subnet via its PublicIPv6 on the external interface", async () => {
    const routes = await show(h(1).host.namespace, "ip", "-6", "route", "show", "dev", "ul0");
    expect(routes).toMatch(new RegExp(`^fd66:0:0:2::/64 via fd00:${UNDERLAY}::12 metric 1024`, "m"));
    expect(routes).toMatch(new RegExp(`^fd66:0:0:3::/64 via fd00:${UNDERLAY}::13 metric 1024`, "m"));
    expect(await show(h(1).host.namespace, "ip", "route", "show", "10.66.2.0/24")).toContain(`10.66.2.0/24 via 192.168.${UNDERLAY}.12 dev ul0`);
  });

  it("containers reach each other over IPv6 and IPv4 between the dual-stack hosts; the single-stack host over IPv4", async () => {
    const failures: string[] = [];
    for (const from of running) {
      for (const to of running) {
        if (from === to) continue;
        const bothDualStack = from.host.index !== 4 && to.host.index !== 4;
        if (bothDualStack && !(await pings(from.host.container, to.host.containerAddressV6))) failures.push(`v6 ${from.host.index}→${to.host.index}`);
        if (!(await pings(from.host.container, to.host.containerAddress))) failures.push(`v4 ${from.host.index}→${to.host.index}`);
      }
    }
    expect(failures).toEqual([]);
    // The single-stack peer got an IPv4 route only; the single-stack host ignored IPv6 halves.
    expect(await show(h(1).host.namespace, "ip", "-6", "route", "show")).not.toContain("fd66:0:0:4::");
    expect(await show(h(4).host.namespace, "ip", "-6", "route", "show")).not.toMatch(/fd66:0:0:[123]::\/64 via/);
    expect(await show(h(4).host.namespace, "ip", "route", "show", "10.66.1.0/24")).toContain(`via 192.168.${UNDERLAY}.11 dev ul0`);
  });

  it("reconcile re-adds a deleted IPv6 route and removes one no lease backs; a dry run changes nothing", async () => {
    const self = h(1);
    const ns = self.host.namespace;
    await ipBatch(ns, ["route del fd66:0:0:2::/64", `route add fd66:0:0:55::/64 via fd00:${UNDERLAY}::55 dev ul0`]);
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(false);
    const dry = formatReconcileReport(await self.backend.reconcile({ dryRun: true }));
    expect(dry.changes.sort()).toEqual([
      `add route fd66:0:0:2::/64 via fd00:${UNDERLAY}::12 dev ul0`,
      `remove route fd66:0:0:55::/64 via fd00:${UNDERLAY}::55 dev ul0`,
    ]);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:2::/64")).toBe("");
    await self.backend.reconcile({ dryRun: false });
    expect(await pings(self.host.container, h(2).host.containerAddressV6)).toBe(true);
    expect(await show(ns, "ip", "-6", "route", "show", "fd66:0:0:55::/64")).toBe("");
    expect((await self.backend.reconcile({ dryRun: true })).changes).toEqual([]);
  });

  it("refuses a peer whose PublicIPv6 is not on-link, naming the address", async () => {
    const far = lease("10.66.9.0/24", { publicIP: `192.168.${UNDERLAY}.19`, publicIPv6: "fd00:4000::9", backendType: "host-gw" }, "fd66:0:0:9::/64");
    await h(1).backend.applyPeers([{ kind: "added", lease: far }]);
    expect(h(1).backend.refusedPeers()).toEqual([expect.stringMatching(/^10\.66\.9\.0\/24,fd66:0:0:9::\/64: host-gw cannot route it: its host fd00:4000::9 is not on-link from ul0 \(reached through a gateway\)/)]);
    expect(await show(h(1).host.namespace, "ip", "route", "show", "10.66.9.0/24")).toBe("");
    await h(1).backend.applyPeers([{ kind: "removed", lease: far }]);
    expect(h(1).backend.refusedPeers()).toEqual([]);
  });

  it("a removed dual-stack lease takes both routes; stop() leaves routes in place", async () => {
    const self = h(2);
    await self.backend.applyPeers([{ kind: "removed", lease: h(3).lease }]);
    expect(await show(self.host.namespace, "ip", "-6", "route", "show", "fd66:0:0:3::/64")).toBe("");
    expect(await show(self.host.namespace, "ip", "route", "show", "10.66.3.0/24")).toBe("");
    await self.backend.applyPeers([{ kind: "added", lease: h(3).lease }]);
    await self.backend.stop();
    expect(await pings(self.host.container, h(3).host.containerAddressV6)).toBe(true);
  });

  it("refuses NAT on IPv6 and a dual-stack network without an IPv6 address, with clear errors", async () => {
    const ns = h(1).host.namespace;
    const nat = new HostGwBackend(await backendContext({ Type: "host-gw" }, { name: "ul0", address: h(1).host.address, addressV6: h(1).host.addressV6, publicIPv6: "2001:db8::7" }, undefined, DUAL_STACK), new Kernel(ns));
    await expect(nat.register()).rejects.toThrow(/public IPv6 2001:db8::7 differs from ul0's address fd00:99::11/);
    const none = new HostGwBackend(await backendContext({ Type: "host-gw" }, { name: "ul0", address: h(1).host.address }, undefined, DUAL_STACK), new Kernel(ns));
    await expect(none.register()).rejects.toThrow(/dual-stack \(EnableIPv6\) but ul0 has no IPv6 address/);
  });
});
