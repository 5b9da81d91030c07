/*
 * One namespace, one veth pair (both ends inside it) and a vxlan device:
 *
 *   ┌──────────────── <prefix>k ────────────────┐
 *   │  ul0 192.168.90.1/24 ── ul1 (peer end)     │
 *   │  flannel.1 (vxlan 1, local 192.168.90.1)   │
 *   └────────────────────────────────────────────┘
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, createVethPair, deleteNamespace, ipBatch, uniquePrefix } from "../../src/lab/netns.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { BatchProcess } from "../../src/kernel/batch-process.js";
import { planChanges } from "../../src/kernel/plan.js";
import type { KernelObject } from "../../src/kernel/objects.js";
import { Ipv4Subnet, formatIpv4, parseIpv4 } from "../../src/net/ipv4.js";

const prefix = uniquePrefix("wk");
const ns = `${prefix}k`;

function peerObjects(count: number): KernelObject[] {
  const objects: KernelObject[] = [];
  const base = parseIpv4("10.70.0.0");
  for (let i = 0; i < count; i++) {
    const subnet = new Ipv4Subnet(base + (i + 1) * 256, 24);
    const address = formatIpv4(subnet.network);
    const mac = `0a:${[(i >> 8) & 255, i & 255, 1, 2, 3].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
    const publicIP = formatIpv4(parseIpv4("192.168.90.0") + 10 + (i % 200));
    objects.push({ kind: "neigh", address, mac, device: "flannel.1" });
    objects.push({ kind: "fdb", mac, device: "flannel.1", destination: publicIP });
    objects.push({ kind: "route", destination: subnet, gateway: address, device: "flannel.1", onlink: true });
  }
  return objects;
}

async function readAll(kernel: Kernel): Promise<KernelObject[]> {
  const [routes, neighbours, fdb] = await Promise.all([
    kernel.readRoutes(),
    kernel.readPermanentNeighbours("flannel.1"),
    kernel.readRemoteFdb("flannel.1"),
  ]);
  const owned = routes
    .filter((route) => route.device === "flannel.1")
    .map(({ destination, gateway, device, onlink }): KernelObject => ({ kind: "route", destination, gateway, device, onlink }));
  return [...owned, ...neighbours, ...fdb];
}

describe("kernel programming layer", () => {
  let kernel: Kernel;
  beforeAll(async () => {
    await createNamespace(ns);
    await createVethPair({ name: "ul0", namespace: ns, addresses: ["192.168.90.1/24"] }, { name: "ul1", namespace: ns });
    await ipBatch(ns, [
      "link add flannel.1 type vxlan id 1 dstport 8472 nolearning local 192.168.90.1 dev ul0",
      "link set flannel.1 up",
    ]);
    kernel = new Kernel(ns);
  });
  afterAll(async () => {
    await kernel?.close();
    await deleteNamespace(ns);
  });

  it("reports each failed line of a batch and keeps going", async () => {
    const batch = new BatchProcess("ip", ns);
    try {
      const results = await batch.run([
        "route replace 10.71.0.0/24 dev no-such-dev",
        "route replace 10.71.1.0/24 dev ul0",
        "neigh replace 10.71.1.9 lladdr 02:00:00:00:00:01 dev no-such-dev nud permanent",
      ]);
      expect(results[0]?.error).toMatch(/no-such-dev/);
      expect(results[1]?.error).toBeUndefined();
      expect(results[2]?.error).toMatch(/no-such-dev/);
      // Line numbers keep counting across batches in one process.
      const second = await batch.run(["route del 10.71.1.0/24 dev ul0", "route del 10.71.1.0/24 dev ul0"]);
      expect(second.map((result) => result.error === undefined)).toEqual([true, false]);
    } finally {
      await batch.close();
    }
  });

  it("restarts the batch process after iproute2 exits on an unparsable line", async () => {
    const batch = new BatchProcess("ip", ns);
    try {
      await expect(batch.run(["addr add 300.1.1.1/32 dev lo"])).rejects.toThrow(/stopped/);
      const results = await batch.run(["route replace 10.71.2.0/24 dev ul0"]);
      expect(results[0]?.error).toBeUndefined();
    } finally {
      await batch.close();
    }
  });

  it("programs 1000 peers (neigh + fdb + route each) well under a second, reads them back, removes them", async () => {
    const desired = peerObjects(1000);
    const started = performance.now();
    const failures = await kernel.apply(planChanges(desired, []));
    const programMs = performance.now() - started;
    expect(failures).toEqual([]);
    console.log(`programmed 1000 peers (3000 objects) in ${programMs.toFixed(0)} ms`);
    expect(programMs).toBeLessThan(1000);

    const actual = await readAll(kernel);
    expect(planChanges(desired, actual)).toEqual([]);

    const removeStarted = performance.now();
    expect(await kernel.apply(planChanges([], actual))).toEqual([]);
    console.log(`removed 1000 peers in ${(performance.now() - removeStarted).toFixed(0)} ms`);
    expect(await readAll(kernel)).toEqual([]);
  });

  it("repairs drift: a deleted route comes back, a changed neighbour is replaced, a stray entry goes", async () => {
    const desired = peerObjects(3);
    expect(await kernel.apply(planChanges(desired, []))).toEqual([]);
    await ipBatch(ns, [
      "route del 10.70.1.0/24",
      "neigh replace 10.70.2.0 lladdr 02:99:99:99:99:99 dev flannel.1 nud permanent",
      "neigh replace 10.70.77.0 lladdr 02:77:77:77:77:77 dev flannel.1 nud permanent",
    ]);
    const changes = planChanges(desired, await readAll(kernel));
    expect(changes.map((change) => `${change.action} ${change.object.kind}`).sort()).toEqual(["add route", "remove neigh", "replace neigh"]);
    expect(await kernel.apply(changes)).toEqual([]);
    expect(planChanges(desired, await readAll(kernel))).toEqual([]);
  });
});
