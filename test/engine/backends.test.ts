/**
 * The udp and userspace vxlan backends driven as the daemon drives them (register, activate,
 * applyPeers, reconcile, stop), each host's data path placed in its namespace
 * (topology: see two-hosts.ts; underlay MTU 1500).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, BackendContext } from "../../src/backend/backend.js";
import { formatReconcileReport } from "../../src/backend/reconcile-report.js";
import { createUdpBackend } from "../../src/backend/udp/udp-backend.js";
import { udpBackend } from "../../src/backend/udp/udp-backend.js";
import {
  createUserspaceVxlanBackend, validateUserspaceVxlanOptions,
} from "../../src/backend/vxlan-userspace/vxlan-userspace-backend.js";
import { networkConfigFromJson } from "../../src/config/network-config.js";
import { EngineBackend } from "../../src/backend/userspace/engine-backend.js";
import { runCommand as run } from "../../src/process/run-command.js";
import type { Lease, LeaseAttrs } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { silentLogger } from "../../src/observe/logger.js";
import { SUBNET_A, SUBNET_B, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, ping, type TwoHosts } from "./two-hosts.js";

let hosts: TwoHosts;
let stateDir: string;

beforeAll(async () => {
  hosts = await createTwoHosts();
  stateDir = mkdtempSync(join(tmpdir(), "weft-engine-backends-"));
});
afterAll(async () => {
  await hosts?.destroy();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

function context(backend: Record<string, unknown>, address: string, name: string): BackendContext {
  return {
    network: networkConfigFromJson({ Network: "10.70.0.0/16", Backend: backend }),
    options: backend,
    external: { name: "ul0", index: 0, address, publicIP: address, mtu: 1500 },
    logger: silentLogger(),
    metrics: new Registry(),
    stateDir: join(stateDir, name),
  };
}

function lease(subnet: Ipv4Subnet, attrs: Partial<LeaseAttrs> & { publicIP: string }): Lease {
  return {
    subnet,
    attrs: { publicIPv6: null, ...attrs },
    key: `/coreos.com/network/subnets/${subnet.toString().replace("/", "-")}`,
    reservation: false,
  };
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return Number(value?.value ?? 0);
}

async function linkExists(namespace: string, name: string): Promise<boolean> {
  return (await run("ip", ["-n", namespace, "link", "show", "dev", name], { allowFailure: true })).exitCode === 0;
}

describe("udp backend", () => {
  it("registers like flannel (no BackendType, MTU 1472), forwards, exports metrics, refuses other types, stops", async () => {
    expect(() => udpBackend.validateOptions({ Type: "udp", Port: 70000 })).toThrow(/Backend.Port: 70000 is outside 1..65535/);
    const contextA = context({ Type: "udp", TunName: "wt0" }, UNDERLAY_A, "a");
    const a = createUdpBackend(contextA, { netns: hosts.a });
    const b = createUdpBackend(context({ Type: "udp", TunName: "wt0" }, UNDERLAY_B, "b"), { netns: hosts.b });
    try {
      const registration = await a.register();
      expect(registration).toEqual({ attrs: {}, mtu: 1472 });
      await b.register();
      const leaseA = lease(SUBNET_A, { publicIP: UNDERLAY_A });
      const leaseB = lease(SUBNET_B, { publicIP: UNDERLAY_B });
      await a.activate(leaseA);
      await b.activate(leaseB);
      await a.applyPeers([{ kind: "added", lease: leaseB }, { kind: "added", lease: leaseA }]);
      await b.applyPeers([{ kind: "added", lease: leaseA }]);
      const result = await ping(hosts.a, TUN_B, { count: 3 });
      expect(result.received, result.output).toBe(3);
      expect(await metricValue(contextA.metrics, "weft_dataplane_packets_total", { direction: "inside" })).toBeGreaterThanOrEqual(3);
      expect(await metricValue(contextA.metrics, "weft_dataplane_drops_total", { direction: "outside", reason: "unknown_sender" })).toBe(0);

      const vxlanLease = lease(Ipv4Subnet.parse("10.70.9.0/24"), { publicIP: "192.168.90.9", backendType: "vxlan" });
      await a.applyPeers([{ kind: "added", lease: vxlanLease }]);
      expect(await metricValue(contextA.metrics, "weft_backend_refused_peers", { backend: "udp" })).toBe(1);

      const report = formatReconcileReport(await a.reconcile({ dryRun: true }));
      expect(report.changes).toEqual([]);
      expect(report.desired).toContain("route 10.70.0.0/16 dev wt0");
      await run("ip", ["-n", hosts.a, "addr", "flush", "dev", "wt0"]);
      // Removing a device's last address also takes its routes away (the kernel flushes them).
      expect(formatReconcileReport(await a.reconcile({ dryRun: true })).changes).toEqual([
        "add address 10.70.1.0/32 dev wt0",
        "add route 10.70.0.0/16 dev wt0",
      ]);
      await a.reconcile({ dryRun: false });
      expect((await a.reconcile({ dryRun: true })).changes).toEqual([]);
      expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBe(2);

      await a.applyPeers([{ kind: "removed", lease: leaseB }]);
      expect((await ping(hosts.a, TUN_B, { count: 2 })).received).toBe(0);
    } finally {
      await a.stop();
      await b.stop();
    }
    expect(await linkExists(hosts.a, "wt0")).toBe(false);
  });
});

describe("userspace vxlan backend", () => {
  it("publishes the kernel backend's BackendData with a MAC that survives restarts, and forwards", async () => {
    expect(() => validateUserspaceVxlanOptions({ Type: "vxlan", Userspace: true, GBP: true })).toThrow(/Backend.GBP/);
    const options = { Type: "vxlan", Userspace: true, TunName: "wt1" };
    const first = createUserspaceVxlanBackend(context(options, UNDERLAY_A, "a"), { netns: hosts.a });
    const registration = await first.register();
    await first.stop();
    const backendData = registration.attrs.backendData as { VNI: number; VtepMAC: string };
    expect(registration.mtu).toBe(1450);
    expect(registration.attrs.backendType).toBe("vxlan");
    expect(Object.keys(backendData)).toEqual(["VNI", "VtepMAC"]);
    expect(backendData.VNI).toBe(1);

    const a: Backend = createUserspaceVxlanBackend(context(options, UNDERLAY_A, "a"), { netns: hosts.a });
    const b: Backend = createUserspaceVxlanBackend(context(options, UNDERLAY_B, "b"), { netns: hosts.b });
    try {
      const again = await a.register();
      expect(again.attrs.backendData).toEqual(backendData);
      const regB = await b.register();
      const leaseA = lease(SUBNET_A, { publicIP: UNDERLAY_A, backendType: "vxlan", backendData });
      const leaseB = lease(SUBNET_B, { publicIP: UNDERLAY_B, backendType: "vxlan", backendData: regB.attrs.backendData });
      await a.activate(leaseA);
      await b.activate(leaseB);
      await a.applyPeers([{ kind: "added", lease: leaseB }]);
      await b.applyPeers([{ kind: "added", lease: leaseA }]);
      const result = await ping(hosts.a, TUN_B, { count: 3, size: 1450 - 28, dontFragment: true });
      expect(result.received, result.output).toBe(3);
      // A udp lease and a vxlan lease of another VNI are not ours to serve.
      await a.applyPeers([
        { kind: "added", lease: lease(Ipv4Subnet.parse("10.70.8.0/24"), { publicIP: "192.168.90.8" }) },
        { kind: "added", lease: lease(Ipv4Subnet.parse("10.70.9.0/24"), { publicIP: "192.168.90.9", backendType: "vxlan", backendData: { VNI: 7, VtepMAC: "0a:00:00:00:00:09" } }) },
      ]);
      const reconcile = formatReconcileReport(await a.reconcile({ dryRun: true }));
      expect(reconcile.changes).toEqual([]);
      expect(reconcile.desired.filter((line) => line.startsWith("peer "))).toEqual([
        `peer ${SUBNET_B} via ${UNDERLAY_B} mac ${(regB.attrs.backendData as { VtepMAC: string }).VtepMAC}`,
      ]);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("engine queue options", () => {
  it("validates Queues and QueueThreads, naming the field", () => {
    expect(() => udpBackend.validateOptions({ Type: "udp", Queues: 0 })).toThrow(/Backend.Queues: 0 is outside 1..8/);
    expect(() => udpBackend.validateOptions({ Type: "udp", Queues: "2" })).toThrow(/Backend.Queues: "2" is not an integer/);
    expect(() => validateUserspaceVxlanOptions({ Type: "vxlan", Userspace: true, Queues: 9 })).toThrow(/Backend.Queues: 9 is outside 1..8/);
    expect(() => validateUserspaceVxlanOptions({ Type: "vxlan", Userspace: true, QueueThreads: 3 }))
      .toThrow(/Backend.QueueThreads: 3 is outside 1..2/);
    expect(() => udpBackend.validateOptions({ Type: "udp", SpinMicroseconds: -1 })).toThrow(/Backend.SpinMicroseconds: -1 is outside 0..100000/);
    expect(() => udpBackend.validateOptions({ Type: "udp", SpinMicroseconds: 200001 })).toThrow(/Backend.SpinMicroseconds: 200001 is outside 0..100000/);
  });

  it("opens the engine with the configured queues and forwards over them (udp, 2 queues, one thread each, spinning 50 µs)", async () => {
    const options = { Type: "udp", TunName: "wt0", Queues: 2, QueueThreads: 1, SpinMicroseconds: 50 };
    const a = createUdpBackend(context(options, UNDERLAY_A, "a"), { netns: hosts.a });
    const b = createUdpBackend(context(options, UNDERLAY_B, "b"), { netns: hosts.b });
    try {
      await a.register();
      await b.register();
      const leaseA = lease(SUBNET_A, { publicIP: UNDERLAY_A });
      const leaseB = lease(SUBNET_B, { publicIP: UNDERLAY_B });
      await a.activate(leaseA);
      await b.activate(leaseB);
      await a.applyPeers([{ kind: "added", lease: leaseB }]);
      await b.applyPeers([{ kind: "added", lease: leaseA }]);
      expect(a).toBeInstanceOf(EngineBackend);
      const features = (a as EngineBackend).runningEngine?.features;
      expect(features?.queues).toBe(2);
      expect(features?.sharedThread).toBe(true);
      expect(features?.spinMicroseconds).toBe(50);
      const result = await ping(hosts.a, TUN_B, { count: 3, size: 1472 - 28, dontFragment: true });
      expect(result.received, result.output).toBe(3);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
