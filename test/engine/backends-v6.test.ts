/**
 * Dual-stack userspace vxlan backends driven as the daemon drives them (register, activate,
 * applyPeers, reconcile, stop) from dual-stack leases, each host's data path in its namespace;
 * and the udp backend saying it stays IPv4-only.
 *
 *     <p>a                                         <p>b
 *   +--------------------------------+          +--------------------------------+
 *   | tun wt1 10.70.1.0/32           |          | tun wt1 10.70.2.0/32           |
 *   |         fd70:0:0:1::/128       |          |         fd70:0:0:2::/128       |
 *   | ul0 192.168.90.1, fd70:90::1 --+-- veth --+-- ul0 192.168.90.2, fd70:90::2 |
 *   +--------------------------------+          +--------------------------------+
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, BackendContext } from "../../src/backend/backend.js";
import { formatReconcileReport } from "../../src/backend/reconcile-report.js";
import { createUdpBackend } from "../../src/backend/udp/udp-backend.js";
import { EngineBackend } from "../../src/backend/userspace/engine-backend.js";
import { createUserspaceVxlanBackend } from "../../src/backend/vxlan-userspace/vxlan-userspace-backend.js";
import { networkConfigFromJson } from "../../src/config/network-config.js";
import { subnetKey } from "../../src/lease/subnet-key.js";
import type { Lease, LeaseAttrs } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { silentLogger } from "../../src/observe/logger.js";
import { runCommand as run } from "../../src/process/run-command.js";
import {
  SUBNET6_A, SUBNET6_B, SUBNET_A, SUBNET_B, TUN6_A, TUN6_B, TUN_B, UNDERLAY6_A, UNDERLAY6_B, UNDERLAY_A, UNDERLAY_B,
  addIpv6Underlay, createTwoHosts, ping, type TwoHosts,
} from "./two-hosts.js";

const DUAL_STACK = { Network: "10.70.0.0/16", EnableIPv6: true, IPv6Network: "fd70::/48" };

let hosts: TwoHosts;
let stateDir: string;

beforeAll(async () => {
  hosts = await createTwoHosts();
  await addIpv6Underlay(hosts);
  stateDir = mkdtempSync(join(tmpdir(), "weft-engine-backends-v6-"));
});
afterAll(async () => {
  await hosts?.destroy();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

function context(backend: Record<string, unknown>, address: string, addressV6: string | undefined, name: string, logger = silentLogger()): BackendContext {
  return {
    network: networkConfigFromJson({ ...DUAL_STACK, Backend: backend }),
    options: backend,
    external: { name: "ul0", index: 0, address, publicIP: address, mtu: 1500, addressV6, publicIPv6: addressV6 },
    logger,
    metrics: new Registry(),
    stateDir: join(stateDir, name),
  };
}

function lease(subnet: Ipv4Subnet, ipv6Subnet: Ipv6Subnet | undefined, attrs: Partial<LeaseAttrs> & { publicIP: string }): Lease {
  return {
    subnet,
    ipv6Subnet,
    attrs: { publicIPv6: null, ...attrs },
    key: subnetKey("/coreos.com/network/subnets", { subnet, ipv6Subnet }),
    reservation: false,
  };
}

async function refusedPeers(registry: Registry): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === "weft_backend_refused_peers");
  return Number(metric?.values[0]?.value ?? 0);
}

describe("dual-stack userspace vxlan backend", () => {
  const options = { Type: "vxlan", Userspace: true, TunName: "wt1" };
  let a: Backend;
  let b: Backend;
  let contextA: BackendContext;
  let leaseA: Lease;
  let leaseB: Lease;

  beforeAll(async () => {
    contextA = context(options, UNDERLAY_A, UNDERLAY6_A, "a");
    a = createUserspaceVxlanBackend(contextA, { netns: hosts.a });
    b = createUserspaceVxlanBackend(context(options, UNDERLAY_B, UNDERLAY6_B, "b"), { netns: hosts.b });
    const regA = await a.register();
    const regB = await b.register();
    leaseA = lease(SUBNET_A, SUBNET6_A, { publicIP: UNDERLAY_A, publicIPv6: UNDERLAY6_A, ...regA.attrs });
    leaseB = lease(SUBNET_B, SUBNET6_B, { publicIP: UNDERLAY_B, publicIPv6: UNDERLAY6_B, ...regB.attrs });
    await a.activate(leaseA);
    await b.activate(leaseB);
    await a.applyPeers([{ kind: "added", lease: leaseB }]);
    await b.applyPeers([{ kind: "added", lease: leaseA }]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("advertises BackendV6Data like flanneld's ({VNI, VtepMAC}) next to BackendData, MTU 1430 (the IPv6 underlay's E − 70, as the kernel backend)", async () => {
    const registration = await createUserspaceVxlanBackend(context(options, UNDERLAY_A, UNDERLAY6_A, "a"), { netns: hosts.a }).register();
    expect(registration.mtu).toBe(1430);
    const data = registration.attrs.backendData as { VNI: number; VtepMAC: string };
    expect(Object.keys(registration.attrs.backendV6Data as object)).toEqual(["VNI", "VtepMAC"]);
    expect(registration.attrs.backendV6Data).toEqual({ VNI: 1, VtepMAC: data.VtepMAC });
  });

  it("forwards both families from dual-stack leases, IPv6 at its path MTU with DF", async () => {
    expect((await ping(hosts.a, TUN_B)).received).toBe(3);
    const v6 = await ping(hosts.a, TUN6_B);
    expect(v6.received, v6.output).toBe(3);
    expect((await ping(hosts.b, TUN6_A, { count: 2, size: 1430 - 48, dontFragment: true })).received).toBe(2);
  });

  it("reconciles the TUN's IPv6 address and route like its IPv4 ones", async () => {
    const clean = formatReconcileReport(await a.reconcile({ dryRun: true }));
    expect(clean.changes).toEqual([]);
    expect(clean.desired).toContain("route fd70::/48 dev wt1");
    await run("ip", ["-n", hosts.a, "-6", "addr", "del", `${TUN6_A}/128`, "dev", "wt1"]);
    await run("ip", ["-n", hosts.a, "-6", "route", "del", "fd70::/48", "dev", "wt1"]);
    expect(formatReconcileReport(await a.reconcile({ dryRun: true })).changes).toEqual([
      `add address ${TUN6_A}/128 dev wt1`,
      "add route fd70::/48 dev wt1",
    ]);
    await a.reconcile({ dryRun: false });
    expect((await a.reconcile({ dryRun: true })).changes).toEqual([]);
    expect((await ping(hosts.a, TUN6_B, { count: 2 })).received).toBe(2);
  });

  it("follows a peer lease whose IPv6 half changes, and refuses one whose BackendV6Data is unusable", async () => {
    // Same key, a new PublicIPv6 nobody holds: IPv6 to b stops, IPv4 goes on.
    const moved = lease(SUBNET_B, SUBNET6_B, { ...leaseB.attrs, publicIPv6: "fd70:90::77" });
    await a.applyPeers([{ kind: "changed", lease: moved, previous: leaseB }]);
    expect((await ping(hosts.a, TUN6_B, { count: 2 })).received).toBe(0);
    expect((await ping(hosts.a, TUN_B, { count: 1 })).received).toBe(1);
    await a.applyPeers([{ kind: "changed", lease: leaseB, previous: moved }]);
    expect((await ping(hosts.a, TUN6_B, { count: 2 })).received).toBe(2);

    const broken = lease(Ipv4Subnet.parse("10.70.9.0/24"), Ipv6Subnet.parse("fd70:0:0:9::/64"), {
      publicIP: "192.168.90.9", publicIPv6: "fd70:90::9", backendType: "vxlan",
      backendData: { VNI: 1, VtepMAC: "0a:00:00:00:00:09" }, backendV6Data: { VNI: 1, VtepMAC: "not a mac" },
    });
    await a.applyPeers([{ kind: "added", lease: broken }]);
    expect(await refusedPeers(contextA.metrics)).toBe(1);
    expect((a as EngineBackend).refusedPeers().join("\n")).toMatch(/BackendV6Data/);
    await a.applyPeers([{ kind: "removed", lease: broken }]);

    // A single-stack peer in a dual-stack network: served over IPv4 only.
    const single = lease(Ipv4Subnet.parse("10.70.8.0/24"), undefined, {
      publicIP: "192.168.90.8", backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "0a:00:00:00:00:08" },
    });
    await a.applyPeers([{ kind: "added", lease: single }]);
    const report = formatReconcileReport(await a.reconcile({ dryRun: true }));
    expect(report.desired.filter((line) => line.startsWith("peer "))).toHaveLength(2);
    expect(await refusedPeers(contextA.metrics)).toBe(0);
  });

  it("takes a removed dual-stack peer out of both families", async () => {
    await a.applyPeers([{ kind: "removed", lease: leaseB }]);
    expect((await ping(hosts.a, TUN6_B, { count: 1 })).output).toMatch(/Destination unreachable/i);
    expect((await ping(hosts.a, TUN_B, { count: 1 })).received).toBe(0);
  });
});

describe("udp backend with EnableIPv6", () => {
  it("warns at creation that it stays IPv4-only, as flannel's udp backend", () => {
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    createUdpBackend(context({ Type: "udp", TunName: "wt2" }, UNDERLAY_A, UNDERLAY6_A, "udp", logger), { netns: hosts.a });
    const warning = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).find((line) => line.level === 40);
    expect(warning?.msg).toMatch(/udp backend: IPv4 only.*EnableIPv6 is ignored/);
  });
});
