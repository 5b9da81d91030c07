/*
 * The ICMP socket and Pinger on real raw sockets, in two namespaces of their own:
 *
 *   <p>a  veth "a0" 10.98.0.1/24 mtu 1500 ──── veth "b0" 10.98.0.2/24 mtu 1400  <p>b
 *         (this test's sockets, via setns: `ip netns exec` of a child node)        (answers echoes)
 *
 * Needs root (CAP_NET_RAW, namespaces) and a built raw-socket (the optional dependency).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { uniquePrefix } from "../../src/lab/netns.js";
import { runCommand } from "../../src/process/run-command.js";

const prefix = uniquePrefix("wpg");
const [a, b] = [`${prefix}a`, `${prefix}b`];
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
  for (const [ns, dev] of [[a, "a0"], [b, "b0"], [a, "lo"], [b, "lo"]] as const) await runCommand("ip", ["-n", ns, "link", "set", dev, "up"]);
});

afterAll(async () => {
  await runCommand("ip", ["netns", "del", a], { allowFailure: true });
  await runCommand("ip", ["netns", "del", b], { allowFailure: true });
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
