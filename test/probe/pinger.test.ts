/*
 * The ICMP socket and Pinger on real raw sockets, in two namespaces of their own:
 *
 *   <p>a  veth "a0" 10.98.0.1/24 mtu 1500 ──── veth "b0" 10.98.0.2/24 mtu 1400  <p>b
 *         fd98::1/64                              fd98::2/64, a router for IPv6:
 *         (this test's sockets, via setns:        (answers echoes)      veth "b1" fd99::1/64 mtu 1300
 *          `ip netns exec` of a child node)                                  │
 *                                                                  <p>c  veth "c0" fd99::2/64 mtu 1300
 *
 * The IPv6 half: ICMPv6 echoes through a raw ICMPv6 socket, and the Packet Too Big that b, a real
 * kernel router, sends for a 1400-byte echo to c (its link to c has MTU 1300).
 *
 * Needs root (CAP_NET_RAW, namespaces) and a built raw-socket (the optional dependency).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { uniquePrefix } from "../../src/lab/netns.js";
import { runCommand } from "../../src/process/run-command.js";

const prefix = uniquePrefix("wpg");
const [a, b, c] = [`${prefix}a`, `${prefix}b`, `${prefix}c`];
const dist = fileURLToPath(new URL("../../dist/probe/", import.meta.url));

/** Runs `body` (an ES module text importing from dist/probe) in namespace a; its stdout as JSON. */
async function inA(body: string): Promise<unknown> {
  const script = `import { Pinger } from ${JSON.stringify(`${dist}pinger.js`)};\nimport { openIcmpSocket } from ${JSON.stringify(`${dist}raw-icmp-socket.js`)};\n${body}`;
  const result = await runCommand(process.execPath, ["--input-type=module", "-e", script], { netns: a });
  return JSON.parse(result.stdout);
}

beforeAll(async () => {
  await runCommand("ip", ["netns", "add", a]);
  await runCommand("ip", ["netns", "add", b]);
  await runCommand("ip", ["-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b]);
  await runCommand("ip", ["-n", a, "addr", "add", "10.98.0.1/24", "dev", "a0"]);
  await runCommand("ip", ["-n", b, "addr", "add", "10.98.0.2/24", "dev", "b0"]);
  await runCommand("ip", ["-n", b, "link", "set", "b0", "mtu", "1400"]);
  await runCommand("ip", ["netns", "add", c]);
  await runCommand("ip", ["-n", b, "link", "add", "b1", "type", "veth", "peer", "name", "c0", "netns", c]);
  for (const ns of [a, b, c]) await runCommand("sysctl", ["-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"], { netns: ns });
  await runCommand("sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"], { netns: b });
  await runCommand("ip", ["-n", a, "addr", "add", "fd98::1/64", "dev", "a0", "nodad"]);
  await runCommand("ip", ["-n", b, "addr", "add", "fd98::2/64", "dev", "b0", "nodad"]);
  await runCommand("ip", ["-n", b, "addr", "add", "fd99::1/64", "dev", "b1", "nodad"]);
  await runCommand("ip", ["-n", c, "addr", "add", "fd99::2/64", "dev", "c0", "nodad"]);
  await runCommand("ip", ["-n", b, "link", "set", "b1", "mtu", "1300"]);
  await runCommand("ip", ["-n", c, "link", "set", "c0", "mtu", "1300"]);
  for (const [ns, dev] of [[a, "a0"], [b, "b0"], [b, "b1"], [c, "c0"], [a, "lo"], [b, "lo"], [c, "lo"]] as const) await runCommand("ip", ["-n", ns, "link", "set", dev, "up"]);
  await runCommand("ip", ["-n", a, "-6", "route", "add", "fd99::/64", "via", "fd98::2"]);
  await runCommand("ip", ["-n", c, "-6", "route", "add", "default", "via", "fd99::1"]);
});

afterAll(async () => {
  for (const ns of [a, b, c]) await runCommand("ip", ["netns", "del", ns], { allowFailure: true });
});

describe("Pinger on a raw ICMP socket", () => {
  it("gets replies with a µs RTT, times out on a silent address, and refuses a DF echo bigger than the route's MTU", async () => {
    const outcomes = (await inA(`
      const pinger = new Pinger(openIcmpSocket);
      const out = [];
      for (const [destination, bytes] of [["10.98.0.2", 84], ["10.98.0.9", 84], ["10.98.0.2", 1400], ["10.98.0.2", 2000]]) {
        out.push(await pinger.echo({ destination, bytes, timeoutMs: 500 }));
      }
      pinger.close();
      console.log(JSON.stringify(out));`)) as Array<{ kind: string; rttMicros?: number; error?: string }>;
    expect(outcomes[0]?.kind).toBe("reply");
    expect(outcomes[0]?.rttMicros).toBeGreaterThan(0);
    expect(outcomes[0]?.rttMicros).toBeLessThan(500_000);
    expect(outcomes[1]).toEqual({ kind: "timeout" });
    // b0's MTU is 1400: a 1400-byte echo arrives; a0's is 1500, so DF 2000 never leaves this host.
    expect(outcomes[2]?.kind).toBe("reply");
    expect(outcomes[3]).toMatchObject({ kind: "send-failed", error: expect.stringMatching(/too long/i) });
  });

  it("answers its own echoes while another ping runs; the ICMP filter keeps incoming echo requests off the socket", async () => {
    const result = (await inA(`
      import { spawn } from "node:child_process";
      import { decodeIcmp } from ${JSON.stringify(`${dist}icmp-packet.js`)};
      const types = [];
      // A second socket that only records what the kernel lets through its ICMP filter.
      const watcher = openIcmpSocket((packet) => types.push(packet[20]));
      const other = spawn("ping", ["-c", "5", "-i", "0.2", "10.98.0.2"], { stdio: "ignore" });
      const inbound = spawn("ip", ["netns", "exec", ${JSON.stringify(b)}, "ping", "-c", "5", "-i", "0.2", "10.98.0.1"], { stdio: "ignore" });
      const pinger = new Pinger(openIcmpSocket);
      const out = [];
      for (let i = 0; i < 5; i++) out.push((await pinger.echo({ destination: "10.98.0.2", bytes: 84, timeoutMs: 1000 })).kind);
      await new Promise((resolve) => other.on("exit", resolve));
      await new Promise((resolve) => inbound.on("exit", resolve));
      pinger.close();
      watcher.close();
      console.log(JSON.stringify({ out, types: [...new Set(types)].sort() }));`)) as { out: string[]; types: number[] };
    expect(result.out).toEqual(["reply", "reply", "reply", "reply", "reply"]);
    // Echo replies (type 0) reach the socket; the incoming echo requests (type 8) are filtered out in the kernel.
    expect(result.types).toContain(0);
    expect(result.types).not.toContain(8);
  });
});

describe("Pinger on a raw ICMPv6 socket", () => {
  it("gets replies, times out on a silent address, refuses a DF echo bigger than the link, and reads a real router's Packet Too Big", async () => {
    const outcomes = (await inA(`
      const pinger = new Pinger(openIcmpSocket, 6);
      const out = [];
      for (const [destination, bytes] of [["fd98::2", 104], ["fd98:0:0:0::9", 104], ["fd98::2", 1400], ["fd98::2", 2000], ["fd99::2", 1200], ["fd99::2", 1400]]) {
        out.push(await pinger.echo({ destination, bytes, timeoutMs: 800 }));
      }
      pinger.close();
      console.log(JSON.stringify(out));`)) as Array<{ kind: string; rttMicros?: number; error?: string; mtu?: number; from?: string }>;
    expect(outcomes[0]?.kind).toBe("reply");
    expect(outcomes[0]?.rttMicros).toBeGreaterThan(0);
    expect(outcomes[1]).toEqual({ kind: "timeout" });
    expect(outcomes[2]?.kind).toBe("reply");
    // a0's MTU is 1500: IPV6_DONTFRAG keeps the kernel from fragmenting a 2000-byte echo itself.
    expect(outcomes[3]).toMatchObject({ kind: "send-failed", error: expect.stringMatching(/too long/i) });
    expect(outcomes[4]?.kind).toBe("reply"); // through b, under its 1300 link
    expect(outcomes[5]).toEqual({ kind: "frag-needed", mtu: 1300, from: "fd98::2" });
  });

  it("keeps neighbour discovery and incoming echo requests off the ICMPv6 socket (its filter), and hands over each sender", async () => {
    const result = (await inA(`
      import { spawn } from "node:child_process";
      const seen = [];
      const watcher = openIcmpSocket((packet, source) => seen.push([packet[0], source]), 6);
      const inbound = spawn("ip", ["netns", "exec", ${JSON.stringify(b)}, "ping", "-6", "-c", "3", "-i", "0.2", "fd98::1"], { stdio: "ignore" });
      const pinger = new Pinger(openIcmpSocket, 6);
      const out = [];
      for (let i = 0; i < 3; i++) out.push((await pinger.echo({ destination: "fd98:0::2", bytes: 104, timeoutMs: 1000 })).kind);
      await new Promise((resolve) => inbound.on("exit", resolve));
      pinger.close();
      watcher.close();
      console.log(JSON.stringify({ out, types: [...new Set(seen.map(([type]) => type))].sort(), sources: [...new Set(seen.map(([, source]) => source))] }));`)) as { out: string[]; types: number[]; sources: string[] };
    expect(result.out).toEqual(["reply", "reply", "reply"]);
    expect(result.types).toEqual([129]); // echo replies only: no 128 (requests), no 133–136 (neighbour discovery)
    expect(result.sources).toEqual(["fd98::2"]);
  });
});
