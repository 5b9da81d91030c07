import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { sleep } from "../../src/async/sleep.js";
import type { Lease } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { startPeerProbing } from "../../src/probe/peer-prober.js";
import type { IcmpSocket } from "../../src/probe/raw-icmp-socket.js";

/**
 * The prober's bookkeeping with a socket double that answers echoes for the addresses in `up`
 * (the real socket is tested in pinger.test.ts and the lab test): one log line per verdict
 * change naming the peer, none for a peer first seen ok, metrics without per-peer labels.
 */
function answeringSocket(up: Set<string>, dropOnce: Set<string>) {
  return (onPacket: (packet: Buffer, source: string) => void): IcmpSocket => ({
    async send(packet, destination) {
      if (dropOnce.delete(destination) || !up.has(destination)) return;
      const header = Buffer.alloc(20);
      header[0] = 0x45;
      header[9] = 1;
      Buffer.from(destination.split(".").map(Number)).copy(header, 12);
      const reply = Buffer.concat([header, packet]);
      reply[20] = 0;
      // The real addon lends its buffer: hand over one that is overwritten right after the call.
      setImmediate(() => {
        onPacket(reply, destination);
        reply.fill(0xff);
      });
    },
    close() {},
  });
}

function lease(third: number, publicIP: string): Lease {
  return { subnet: Ipv4Subnet.parse(`10.66.${third}.0/24`), attrs: { publicIP, publicIPv6: null, backendType: "vxlan" }, key: `k${third}`, reservation: false };
}

function capturedLogger() {
  const lines: Array<{ msg: string; subnet?: string; verdict?: string; level: number }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

async function sample(registry: Registry, series: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("startPeerProbing", () => {
  it("logs each verdict change once, naming the peer, ignores a single lost echo, and keeps per-verdict gauges", async () => {
    const up = new Set(["192.168.77.12", "10.66.2.0", "192.168.77.13", "10.66.3.0"]);
    const dropOnce = new Set<string>();
    const { logger, lines } = capturedLogger();
    const registry = new Registry();
    const peers = [lease(2, "192.168.77.12"), lease(3, "192.168.77.13")];
    const probing = startPeerProbing({
      intervalMs: 400,
      backend: { type: "vxlan", options: { Type: "vxlan" } },
      overlayMtu: 1450,
      peers: () => peers,
      logger,
      registry,
      openSocket: answeringSocket(up, dropOnce),
    });
    const waitRounds = async (rounds: number) => {
      const target = ((await sample(registry, "weft_probe_rounds_total")) ?? 0) + rounds;
      while (((await sample(registry, "weft_probe_rounds_total")) ?? 0) < target) await sleep(10);
    };
    await waitRounds(2);
    expect(await sample(registry, 'weft_probe_peers{verdict="ok"}')).toBe(2);
    // One lost echo (a busy host) is probed again at once and is no change: no "peer down" and back.
    dropOnce.add("192.168.77.12");
    await waitRounds(2);
    expect(dropOnce.size).toBe(0);
    up.delete("10.66.3.0"); // h3's encapsulation is blocked
    await waitRounds(3);
    up.add("10.66.3.0");
    await waitRounds(3);
    await probing.stop();

    const changes = lines.filter((line) => line.subnet !== undefined).map((line) => `${line.subnet} ${line.verdict}`);
    expect(changes).toEqual(["10.66.3.0/24 encapsulation-blocked", "10.66.3.0/24 ok"]);
    expect(lines.find((line) => line.verdict === "encapsulation-blocked")?.msg).toMatch(
      /^peer 10\.66\.3\.0\/24 \(192\.168\.77\.13\): encapsulation blocked \(underlay answers, overlay does not: UDP 8472 filtered\?\), RTT [\d.]+(µs|ms) \(was ok\)$/,
    );
    expect(lines.find((line) => line.verdict === "encapsulation-blocked")?.level).toBe(40);
    expect(await sample(registry, 'weft_probe_peers{verdict="ok"}')).toBe(2);
    expect(await sample(registry, 'weft_probe_failures_total{probe="overlay"}')).toBeGreaterThanOrEqual(3);
    expect(await sample(registry, "weft_probe_rtt_seconds_count")).toBeGreaterThan(0);
    expect(probing.results().get("10.66.3.0/24")?.verdict.kind).toBe("ok");
  });

  it("looks again, after a pause, at a path whose first verdict is bad: a peer still learning this host's lease is no alarm", async () => {
    // h2's overlay answers 100 ms after the start (it has just learned this host's lease); h3's never.
    const up = new Set(["192.168.77.12", "192.168.77.13"]);
    setTimeout(() => up.add("10.66.2.0"), 100);
    const { logger, lines } = capturedLogger();
    const registry = new Registry();
    const probing = startPeerProbing({
      intervalMs: 400,
      backend: { type: "vxlan", options: { Type: "vxlan" } },
      overlayMtu: 1450,
      peers: () => [lease(2, "192.168.77.12"), lease(3, "192.168.77.13")],
      logger,
      registry,
      openSocket: answeringSocket(up, new Set()),
    });
    while (((await sample(registry, "weft_probe_rounds_total")) ?? 0) < 3) await sleep(10);
    await probing.stop();

    const changes = lines.filter((line) => line.subnet !== undefined).map((line) => `${line.subnet} ${line.verdict}`);
    expect(changes).toEqual(["10.66.3.0/24 encapsulation-blocked"]);
    expect(lines.find((line) => line.verdict === "encapsulation-blocked")?.msg).not.toContain("(was");
    expect(probing.results().get("10.66.2.0/24")?.verdict.kind).toBe("ok");
    expect(probing.results().get("10.66.3.0/24")?.verdict.kind).toBe("encapsulation-blocked");
  });

  it("turns itself off with one error line when the socket cannot be opened; the daemon goes on", async () => {
    const { logger, lines } = capturedLogger();
    const probing = startPeerProbing({
      intervalMs: 1000,
      backend: { type: "host-gw", options: { Type: "host-gw" } },
      overlayMtu: 1500,
      peers: () => [],
      logger,
      registry: new Registry(),
      openSocket: () => {
        throw new Error("cannot open a raw ICMP socket: Operation not permitted: probing needs CAP_NET_RAW");
      },
    });
    await probing.stop();
    expect(lines.map((line) => line.msg)).toEqual(["peer probing is off: cannot open a raw ICMP socket: Operation not permitted: probing needs CAP_NET_RAW"]);
  });
});
