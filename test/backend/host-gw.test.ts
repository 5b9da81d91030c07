/*
 * Two hosts on one L2 link, each with a "docker0" (a veth end holding the subnet's .1):
 *
 *   ┌─ <p>a ──────────────────────┐          ┌─ <p>b ──────────────────────┐
 *   │ ct0 10.66.1.1/24 (docker0)  │          │ ct0 10.66.2.1/24 (docker0)  │
 *   │ ul0 192.168.94.1/24 ────────┼──────────┼── ul0 192.168.94.2/24       │
 *   │ 172.31.0.0/16 via .254      │          │                             │
 *   └─────────────────────────────┘          └─────────────────────────────┘
 * A pings B's 10.66.2.1 from its own 10.66.1.1, which needs the host-gw route on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, setSysctls, uniquePrefix } from "../../src/lab/netns.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { HostGwBackend } from "../../src/backend/host-gw/host-gw-backend.js";
import type { BackendContext } from "../../src/backend/backend.js";
import { formatReconcileReport } from "../../src/backend/reconcile-report.js";
import { backendContext, capturingLogger, lease } from "./kernel-fixtures.js";

const p = uniquePrefix("wh");
const [nsA, nsB] = [`${p}a`, `${p}b`];
const leaseA = lease("10.66.1.0/24", { publicIP: "192.168.94.1", backendType: "host-gw" });
const leaseB = lease("10.66.2.0/24", { publicIP: "192.168.94.2", backendType: "host-gw" });
const far = lease("10.66.3.0/24", { publicIP: "172.31.0.5", backendType: "host-gw" });

async function ping(): Promise<boolean> {
  return (await execInNamespace(nsA, "ping", ["-c", "1", "-W", "1", "-I", "10.66.1.1", "10.66.2.1"], { allowFailure: true })).exitCode === 0;
}
async function routes(ns: string): Promise<string> {
  return (await execInNamespace(ns, "ip", ["route", "show"])).stdout;
}

describe("host-gw backend", () => {
  const logA = capturingLogger();
  let contextA: BackendContext;
  let a: HostGwBackend;
  let b: HostGwBackend;
  beforeAll(async () => {
    await Promise.all([createNamespace(nsA), createNamespace(nsB)]);
    await createVethPair({ name: "ul0", namespace: nsA, addresses: ["192.168.94.1/24"] }, { name: "ul0", namespace: nsB, addresses: ["192.168.94.2/24"] });
    await createVethPair({ name: "ct0", namespace: nsA, addresses: ["10.66.1.1/24"] }, { name: "ct1", namespace: nsA });
    await createVethPair({ name: "ct0", namespace: nsB, addresses: ["10.66.2.1/24"] }, { name: "ct1", namespace: nsB });
    await ipBatch(nsA, ["route add 172.31.0.0/16 via 192.168.94.254"]);
    await Promise.all([setSysctls(nsA, { "net.ipv4.ip_forward": "1" }), setSysctls(nsB, { "net.ipv4.ip_forward": "1" })]);
    contextA = { ...(await backendContext({ Type: "host-gw" }, { name: "ul0", address: "192.168.94.1" })), logger: logA.logger };
    a = new HostGwBackend(contextA, new Kernel(nsA));
    b = new HostGwBackend(await backendContext({ Type: "host-gw" }, { name: "ul0", address: "192.168.94.2" }), new Kernel(nsB));
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await Promise.all([deleteNamespace(nsA), deleteNamespace(nsB)]);
  });

  it("refuses to start when the public IP is not the interface address (NAT)", async () => {
    const nat = new HostGwBackend(await backendContext({ Type: "host-gw" }, { name: "ul0", address: "192.168.94.1", publicIP: "203.0.113.7" }), new Kernel(nsA));
    await expect(nat.register()).rejects.toThrow(/203\.0\.113\.7 differs from ul0's address 192\.168\.94\.1/);
  });

  it("routes each peer via its PublicIP; traffic flows both ways", async () => {
    expect(await a.register()).toEqual({ attrs: { backendType: "host-gw" }, mtu: 1500 });
    await b.register();
    await a.activate(leaseA);
    await b.activate(leaseB);
    await a.applyPeers([{ kind: "added", lease: leaseB }]);
    await b.applyPeers([{ kind: "added", lease: leaseA }]);
    expect(await routes(nsA)).toContain("10.66.2.0/24 via 192.168.94.2 dev ul0");
    expect(await ping()).toBe(true);
  });

  it("refuses a peer that is not on-link, says why and counts it", async () => {
    await a.applyPeers([{ kind: "added", lease: far }]);
    expect(await routes(nsA)).not.toContain("10.66.3.0/24");
    expect(a.refusedPeers()).toEqual([expect.stringMatching(/10\.66\.3\.0\/24.*172\.31\.0\.5 is not on-link from ul0 \(reached through a gateway\)/)]);
    const metric = await contextA.metrics.getSingleMetricAsString("weft_backend_refused_peers");
    expect(metric).toContain('weft_backend_refused_peers{backend="host-gw"} 1');
    expect((await a.reconcile({ dryRun: true })).changes).toEqual([]);
    // Reconcile re-checks refused peers every few seconds; the error must not repeat each time.
    await a.reconcile({ dryRun: false });
    await a.reconcile({ dryRun: false });
    expect(logA.lines.filter((line) => line.level === 50 && line.msg.includes("not on-link"))).toHaveLength(1);
  });

  it("never programs a peer lease advertising our own PublicIP, and says so once", async () => {
    const stale = lease("10.66.4.0/24", { publicIP: "192.168.94.1", backendType: "host-gw" });
    await a.applyPeers([{ kind: "added", lease: stale }]);
    await a.reconcile({ dryRun: false });
    await a.reconcile({ dryRun: false });
    expect(await routes(nsA)).not.toContain("10.66.4.0/24");
    expect(logA.lines.filter((line) => line.msg.includes("own PublicIP 192.168.94.1"))).toHaveLength(1);
    await a.applyPeers([{ kind: "removed", lease: stale }]);
  });

  it("a new own lease removes the peer route for that subnet from the kernel; reconcile removes a stale own-subnet route, never docker0's", async () => {
    const peer5 = lease("10.66.5.0/24", { publicIP: "192.168.94.2", backendType: "host-gw" });
    await a.applyPeers([{ kind: "added", lease: peer5 }]);
    expect(await routes(nsA)).toContain("10.66.5.0/24 via 192.168.94.2 dev ul0");
    await a.activate(lease("10.66.5.0/24", { publicIP: "192.168.94.1", backendType: "host-gw" }));
    expect(await routes(nsA)).not.toContain("10.66.5.0/24");
    await a.activate(leaseA);
    expect(await routes(nsA)).toContain("10.66.5.0/24 via 192.168.94.2 dev ul0"); // a peer again
    await a.applyPeers([{ kind: "removed", lease: peer5 }]);

    await ipBatch(nsA, ["route add 10.66.1.0/24 via 192.168.94.2 dev ul0 metric 50"]);
    const report = formatReconcileReport(await a.reconcile({ dryRun: false }));
    expect(report.changes).toEqual(["remove route 10.66.1.0/24 via 192.168.94.2 dev ul0"]);
    const own = (await execInNamespace(nsA, "ip", ["route", "show", "10.66.1.0/24"])).stdout;
    expect(own).toContain("dev ct0 proto kernel");
    expect(own).not.toContain("via");
    expect(await ping()).toBe(true);
  });

  it("reconcile re-adds a deleted route and removes a route no lease backs", async () => {
    await ipBatch(nsA, ["route del 10.66.2.0/24", "route add 10.66.9.0/24 via 192.168.94.9 dev ul0"]);
    expect(await ping()).toBe(false);
    const report = formatReconcileReport(await a.reconcile({ dryRun: false }));
    expect(report.changes.sort()).toEqual(["add route 10.66.2.0/24 via 192.168.94.2 dev ul0", "remove route 10.66.9.0/24 via 192.168.94.9 dev ul0"]);
    expect(await ping()).toBe(true);
    expect(await routes(nsA)).not.toContain("10.66.9.0/24");
  });

  it("a removed lease takes its route with it; stop() leaves routes in place", async () => {
    await b.stop();
    expect(await routes(nsB)).toContain("10.66.1.0/24 via 192.168.94.1 dev ul0");
    await a.applyPeers([{ kind: "removed", lease: leaseB }]);
    expect(await routes(nsA)).not.toContain("10.66.2.0/24");
    expect(await ping()).toBe(false);
  });
});
