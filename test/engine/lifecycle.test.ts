/**
 * Engine lifecycle in one namespace (no peers needed):
 *
 *   <p>a: ul0 192.168.90.1/24 (veth to <p>b), TUN opened and closed 50 times
 *   (single-queue, then multi-queue: 2 TUN queues + 2 SO_REUSEPORT sockets)
 *
 * Leaks are counted in this very process: /proc/self/fd and /proc/self/task.
 */
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { waitForListener, waitUntil } from "../../src/lab/readiness.js";
import { isAlive, terminatePids } from "../../src/process/pids.js";
import { runCommand as run } from "../../src/process/run-command.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { IPERF3_PORT, NETWORK, SUBNET_A, SUBNET_B, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, type TwoHosts } from "./two-hosts.js";

let hosts: TwoHosts;

beforeAll(async () => {
  hosts = await createTwoHosts();
});
afterAll(async () => {
  await hosts?.destroy();
});

const fdCount = () => readdirSync("/proc/self/fd").length;
// The engine names its threads weft-q<N>-…: Node's own pools grow lazily under load and must not count.
const threadCount = () =>
  readdirSync("/proc/self/task").filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, "utf8").startsWith("weft-q");
    } catch {
      return false; // the thread ended between the listing and the read
    }
  }).length;

async function linkExists(namespace: string, name: string): Promise<boolean> {
  const result = await run("ip", ["-n", namespace, "link", "show", "dev", name], { allowFailure: true });
  return result.exitCode === 0;
}

describe("engine lifecycle", () => {
  it("opens and closes 50 times with 1 queue without leaking fds or threads (spinning or not), and removes the TUN", async () => {
    // Warm up once: the first open loads the addon (an fd for the .so) and may start libuv threads.
    openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, queues: 1 }).close();
    const fds = fdCount();
    const threads = threadCount();
    for (let i = 0; i < 50; i++) {
      const mode = i % 2 === 0 ? "udp" : "vxlan";
      const engine = openEngine({
        mode, tunName: "wt0", mtu: 1400, bindAddress: UNDERLAY_A, netns: hosts.a, vtepMac: "0a:00:00:00:00:01", queues: 1,
        // Spinning gives each of the two threads a kick eventfd: those must go with the engine too.
        spinMicroseconds: i % 4 < 2 ? 100 : 0,
      });
      engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: "0a:00:00:00:00:02" });
      expect(engine.features.sharedThread).toBe(false); // 1 queue: a thread per direction
      expect(threadCount()).toBe(threads + 2);
      engine.close();
      engine.close(); // idempotent
    }
    expect(fdCount()).toBe(fds);
    expect(threadCount()).toBe(threads);
    expect(await linkExists(hosts.a, "wt0")).toBe(false);
  });

  it("reports the device, address and errno when it cannot open", () => {
    expect(() => openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: "192.0.2.1", netns: hosts.a }))
      .toThrow(/cannot bind UDP 192\.0\.2\.1:8285: Cannot assign requested address \(the address is not on any interface/);
    const first = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a });
    try {
      expect(() => openEngine({ mode: "udp", tunName: "wt1", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a }))
        .toThrow(/cannot bind UDP 192\.168\.90\.1:8285: Address already in use/);
    } finally {
      first.close();
    }
    expect(() => openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: `${hosts.prefix}missing` }))
      .toThrow(/cannot open network namespace \/run\/netns\/.*missing: No such file or directory/);
    expect(() => openEngine({ mode: "udp", tunName: "wt0", mtu: 20, bindAddress: UNDERLAY_A, netns: hosts.a }))
      .toThrow(/cannot set MTU 20 on wt0/);
    expect(() => openEngine({ mode: "vxlan", tunName: "wt0", mtu: 1450, bindAddress: UNDERLAY_A, netns: hosts.a }))
      .toThrow(/vtepMac is required/);
    const engine = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a });
    engine.close();
    expect(() => engine.counters()).toThrow(/engine on wt0 is closed/);
  });

  it("closes promptly while a TCP stream is flowing through it (its threads spinning and kicking each other)", async () => {
    const a = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, spinMicroseconds: 200 });
    const b = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_B, netns: hosts.b, spinMicroseconds: 200 });
    await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
    await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
    const server = spawnDetachedInNamespace(hosts.b, "iperf3", ["-s", "-1", "-B", TUN_B], "/dev/null");
    try {
      a.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
      b.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A });
      await waitForListener(hosts.b, "tcp", IPERF3_PORT);
      const client = execInNamespace(hosts.a, "iperf3", ["-c", TUN_B, "-t", "3"], { allowFailure: true, timeoutMs: 5000 });
      // The stream is flowing once the engine has carried more than a thousand packets.
      await waitUntil("1000 packets through engine A", () => a.counters().inside.packets > 1000);
      const moving = a.counters().inside.packets;
      expect(moving).toBeGreaterThan(1000);
      const started = performance.now();
      a.close();
      b.close();
      expect(performance.now() - started).toBeLessThan(1000);
      await client;
    } finally {
      a.close();
      b.close();
      await terminatePids([server], 500);
    }
  });
});

describe("multi-queue engine lifecycle", () => {
  async function tunQueues(namespace: string, name: string): Promise<string[]> {
    const result = await execInNamespace(namespace, "ls", [`/sys/class/net/${name}/queues`]);
    return result.stdout.trim().split(/\s+/).filter((entry) => entry.startsWith("tx-")).sort();
  }

  it("opens and closes 50 times with 2 queues without leaking fds or threads, and removes the TUN", async () => {
    openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, queues: 2 }).close();
    const fds = fdCount();
    const threads = threadCount();
    for (let i = 0; i < 50; i++) {
      const mode = i % 2 === 0 ? "udp" : "vxlan";
      // Half the cycles with one thread per queue (the default with several queues), half with one per direction.
      const sharedThread = i % 4 < 2;
      const engine = openEngine({
        mode, tunName: "wt0", mtu: 1400, bindAddress: UNDERLAY_A, netns: hosts.a, vtepMac: "0a:00:00:00:00:01",
        queues: 2, ...(sharedThread ? {} : { sharedThread: false }),
      });
      expect(engine.features.queues).toBe(2);
      expect(engine.features.sharedThread).toBe(sharedThread);
      engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: "0a:00:00:00:00:02" });
      expect(threadCount()).toBe(threads + (sharedThread ? 2 : 4));
      if (i === 0) {
        expect(await tunQueues(hosts.a, "wt0")).toEqual(["tx-0", "tx-1"]);
        expect(engine.features.reuseportFlow).toBe(true);
      }
      engine.close();
      engine.close();
    }
    expect(fdCount()).toBe(fds);
    expect(threadCount()).toBe(threads);
    expect(await linkExists(hosts.a, "wt0")).toBe(false);
  });

  it("refuses a port already taken, by a single- or a multi-queue engine (no joining another's SO_REUSEPORT group)", () => {
    for (const [firstQueues, secondQueues] of [[2, 2], [1, 2], [2, 1]] as const) {
      const first = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, queues: firstQueues });
      try {
        expect(() => openEngine({ mode: "udp", tunName: "wt1", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, queues: secondQueues }))
          .toThrow(/cannot bind UDP 192\.168\.90\.1:8285: Address already in use/);
      } finally {
        first.close();
      }
    }
    expect(() => openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, queues: 9 }))
      .toThrow(/queues 9 must be an integer in 1\.\.8/);
  });

  it("carries 4 TCP streams over 2 queues on both ends and closes promptly under load", async () => {
    const a = openEngine({ mode: "vxlan", tunName: "wt0", mtu: 1450, bindAddress: UNDERLAY_A, netns: hosts.a, vtepMac: "0a:00:00:00:00:01", queues: 2 });
    const b = openEngine({ mode: "vxlan", tunName: "wt0", mtu: 1450, bindAddress: UNDERLAY_B, netns: hosts.b, vtepMac: "0a:00:00:00:00:02", queues: 2 });
    await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
    await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
    const servers = [spawnDetachedInNamespace(hosts.b, "iperf3", ["-s", "-1", "-B", TUN_B], "/dev/null")];
    try {
      a.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, vtepMac: "0a:00:00:00:00:02" });
      b.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A, vtepMac: "0a:00:00:00:00:01" });
      await waitForListener(hosts.b, "tcp", IPERF3_PORT);
      const result = await execInNamespace(hosts.a, "iperf3", ["-c", TUN_B, "-t", "2", "-P", "4", "-J"], { timeoutMs: 15_000 });
      const report = JSON.parse(result.stdout) as { end: { sum_received: { bytes: number }; streams: unknown[] } };
      expect(report.end.streams).toHaveLength(4);
      // What the receiver got is what the engines counted through (headers aside): no silent loss path.
      expect(report.end.sum_received.bytes).toBeGreaterThan(1_000_000);
      const counted = b.counters().outside;
      expect(counted.bytes).toBeGreaterThan(report.end.sum_received.bytes);
      expect(counted.drops["unknown_sender"]).toBe(0);
      expect(counted.drops["source_not_in_subnet"]).toBe(0);
      // The first server (-1) exits after one client: the load for the close needs a second one.
      const first = servers[0] as number;
      await waitUntil("the first iperf3 server to exit", () => !isAlive(first));
      servers.push(spawnDetachedInNamespace(hosts.b, "iperf3", ["-s", "-1", "-B", TUN_B], "/dev/null"));
      await waitForListener(hosts.b, "tcp", IPERF3_PORT);
      const loadFrom = b.counters().outside.packets;
      const client = execInNamespace(hosts.a, "iperf3", ["-c", TUN_B, "-t", "3", "-P", "4"], { allowFailure: true, timeoutMs: 5000 });
      await waitUntil("1000 packets of the second stream through engine B", () => b.counters().outside.packets > loadFrom + 1000);
      const started = performance.now();
      a.close();
      b.close();
      expect(performance.now() - started).toBeLessThan(1000);
      await client;
    } finally {
      a.close();
      b.close();
      await terminatePids(servers, 500);
    }
  });
});
