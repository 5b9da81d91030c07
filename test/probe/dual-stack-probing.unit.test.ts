/*
 * Probing IPv6 paths, without a network: which paths a lease gives (probe-targets), the daemon's
 * prober over a socket double that answers both families as the kernel hands replies over (IPv4
 * with its header, ICMPv6 without, sender apart), and the status model's rows per family. The
 * real sockets are in pinger.test.ts and the IPv6 lab in probe-ipv6-lab.test.ts.
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { sleep } from "../../src/async/sleep.js";
import type { Lease } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import type { IpFamily } from "../../src/net/ip-subnet.js";
import { startPeerProbing } from "../../src/probe/peer-prober.js";
import { probeTargets } from "../../src/probe/probe-targets.js";
import type { IcmpSocket } from "../../src/probe/raw-icmp-socket.js";
import { buildStatusModel } from "../../src/probe/status-model.js";

const vxlan = { type: "vxlan", options: { Type: "vxlan" } };

function dualStack(n: number, publicIPv6: string | null = `fd77::${n}`): Lease {
  return {
    subnet: Ipv4Subnet.parse(`10.66.${n}.0/24`),
    ipv6Subnet: Ipv6Subnet.parse(`fd66:0:0:${n}::/64`),
    attrs: { publicIP: `192.168.77.${n}`, publicIPv6, backendType: "vxlan" },
    key: `k${n}`,
    reservation: false,
  };
}

function ipv6Only(n: number): Lease {
  return { ipv6Subnet: Ipv6Subnet.parse(`fd66:0:0:${n}::/64`), attrs: { publicIP: "0.0.0.0", publicIPv6: `fd77:0:0:0::${n}`, backendType: "vxlan" }, key: `k${n}`, reservation: false };
}

describe("probeTargets", () => {
  it("gives a dual-stack lease an IPv4 and an IPv6 path, the IPv6 one to flannel-v6's address over 70 bytes of vxlan", () => {
    expect(probeTargets([dualStack(2)], vxlan)).toEqual([
      { subnet: "10.66.2.0/24", publicIP: "192.168.77.2", overlayAddress: "10.66.2.0", encapsulation: "UDP 8472", overheadBytes: 50 },
      { subnet: "fd66:0:0:2::/64", publicIP: "fd77::2", overlayAddress: "fd66:0:0:2::", encapsulation: "UDP 8472", overheadBytes: 70 },
    ]);
  });

  it("gives an IPv6-only lease its IPv6 path only (PublicIP 0.0.0.0 is no address), in canonical form", () => {
    expect(probeTargets([ipv6Only(12)], vxlan).map((target) => `${target.subnet} ${target.publicIP} ${target.overlayAddress}`)).toEqual(["fd66:0:0:12::/64 fd77::12 fd66:0:0:12::"]);
  });

  it("host-gw: IPv6 paths without overlay echo; udp: no IPv6 path (flannel's udp is IPv4 only); no PublicIPv6: none", () => {
    expect(probeTargets([dualStack(3)], { type: "host-gw", options: { Type: "host-gw" } }).map((target) => [target.publicIP, target.overlayAddress, target.overheadBytes])).toEqual([
      ["192.168.77.3", undefined, 0],
      ["fd77::3", undefined, 0],
    ]);
    expect(probeTargets([dualStack(3)], { type: "udp", options: { Type: "udp" } }).map((target) => target.subnet)).toEqual(["10.66.3.0/24"]);
    expect(probeTargets([dualStack(4, null)], vxlan).map((target) => target.subnet)).toEqual(["10.66.4.0/24"]);
  });
});

/** Answers echoes for the addresses in `up`: IPv4 with an IP header, ICMPv6 as the message alone plus the sender. */
function answeringSocket(up: Set<string>, families: IpFamily[]) {
  return (onPacket: (packet: Buffer, source: string) => void, family: IpFamily): IcmpSocket => {
    families.push(family);
    return {
      async send(packet, destination) {
        if (!up.has(destination)) return;
        let reply: Buffer;
        if (family === 4) {
          const header = Buffer.alloc(20);
          header[0] = 0x45;
          header[9] = 1;
          Buffer.from(destination.split(".").map(Number)).copy(header, 12);
          reply = Buffer.concat([header, packet]);
          reply[20] = 0;
        } else {
          reply = Buffer.from(packet);
          reply[0] = 129;
        }
        setImmediate(() => onPacket(reply, destination));
      },
      close() {},
    };
  };
}

function capturedLogger() {
  const lines: Array<{ msg: string; subnet?: string; verdict?: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

describe("the daemon's prober with dual-stack and IPv6-only peers", () => {
  it("probes each family of a peer apart, logs the IPv6 path's change alone, and the status page shows both rows", async () => {
    // h2 answers everything; h3's IPv6 overlay (flannel-v6) is cut; h4 is IPv6-only.
    const up = new Set(["192.168.77.2", "10.66.2.0", "fd77::2", "fd66:0:0:2::", "192.168.77.3", "10.66.3.0", "fd77::3", "fd66:0:0:3::", "fd77::4", "fd66:0:0:4::"]);
    const families: IpFamily[] = [];
    const { logger, lines } = capturedLogger();
    const registry = new Registry();
    const peers = [dualStack(2), dualStack(3), ipv6Only(4)];
    const probing = startPeerProbing({ intervalMs: 300, backend: vxlan, overlayMtu: 1430, underlayMtu: 1500, peers: () => peers, logger, registry, openSocket: answeringSocket(up, families) });
    const rounds = async () => Number((await registry.getSingleMetricAsString("weft_probe_rounds_total")).split("\n").find((line) => line.startsWith("weft_probe_rounds_total "))?.split(" ")[1] ?? 0);
    const waitRounds = async (count: number) => {
      const target = (await rounds()) + count;
      while ((await rounds()) < target) await sleep(10);
    };
    await waitRounds(2);
    up.delete("fd66:0:0:3::");
    await waitRounds(3);

    const results = probing.results();
    expect([...results.keys()].sort()).toEqual(["10.66.2.0/24", "10.66.3.0/24", "fd66:0:0:2::/64", "fd66:0:0:3::/64", "fd66:0:0:4::/64"]);
    expect(results.get("fd66:0:0:2::/64")?.overlay).toMatchObject({ status: "ok", bytes: 1430 });
    expect(results.get("fd66:0:0:2::/64")?.pathMtu).toEqual({ status: "fits", expected: 1500 });
    expect(results.get("fd66:0:0:3::/64")?.verdict.kind).toBe("encapsulation-blocked");
    expect(results.get("10.66.3.0/24")?.verdict.kind).toBe("ok");
    expect(results.get("fd66:0:0:4::/64")?.verdict.kind).toBe("ok");
    // One socket per family, the IPv6 one opened when the first IPv6 path was probed.
    expect(families.sort()).toEqual([4, 6]);
    const changes = lines.filter((line) => line.subnet !== undefined).map((line) => `${line.subnet} ${line.verdict}`);
    expect(changes).toEqual(["fd66:0:0:3::/64 encapsulation-blocked"]);
    expect(lines.find((line) => line.verdict === "encapsulation-blocked")?.msg).toMatch(/^peer fd66:0:0:3::\/64 \(fd77::3\): encapsulation blocked/);

    const model = await buildStatusModel({
      backend: "vxlan",
      ownLease: dualStack(1),
      peers,
      probing,
      readiness: { ready: true, checks: {} },
      registry,
      etcdEndpoints: ["http://x"],
      etcdCheck: () => Promise.resolve(),
    });
    await probing.stop();
    expect(model.lease).toMatchObject({ subnet: "10.66.1.0/24 fd66:0:0:1::/64", publicIP: "192.168.77.1 fd77::1" });
    expect(model.peers.map((peer) => peer.paths.map((path) => `IPv${path.family} ${path.subnet} ${path.publicIP} ${path.verdict}`))).toEqual([
      ["IPv4 10.66.2.0/24 192.168.77.2 ok", "IPv6 fd66:0:0:2::/64 fd77::2 ok"],
      ["IPv4 10.66.3.0/24 192.168.77.3 ok", "IPv6 fd66:0:0:3::/64 fd77::3 encapsulation-blocked"],
      ["IPv6 fd66:0:0:4::/64 fd77::4 ok"],
    ]);
  });

  it("an ICMPv6 socket that cannot be opened fails the IPv6 paths with the reason, IPv4 goes on", async () => {
    const up = new Set(["192.168.77.2", "10.66.2.0"]);
    const { logger, lines } = capturedLogger();
    const registry = new Registry();
    const open = answeringSocket(up, []);
    const probing = startPeerProbing({
      intervalMs: 300,
      backend: vxlan,
      overlayMtu: 1430,
      peers: () => [dualStack(2)],
      logger,
      registry,
      openSocket: (onPacket, family) => {
        if (family === 6) throw new Error("cannot open a raw ICMPv6 socket: Address family not supported by protocol");
        return open(onPacket, family);
      },
    });
    while (probing.results().size < 2) await sleep(10);
    await probing.stop();
    expect(probing.results().get("10.66.2.0/24")?.verdict.kind).toBe("ok");
    expect(probing.results().get("fd66:0:0:2::/64")?.verdict.kind).toBe("peer-down");
    // Said once, with the reason, not every round.
    expect(lines.filter((line) => line.msg.startsWith("IPv6 peers cannot be probed")).map((line) => line.msg)).toEqual([
      'IPv6 peers cannot be probed (they read "peer down"): cannot open a raw ICMPv6 socket: Address family not supported by protocol',
    ]);
  });
});

describe("the status model of a backend without IPv6", () => {
  it("says why a udp peer's IPv6 subnet is not probed", async () => {
    const model = await buildStatusModel({
      backend: "udp",
      ownLease: undefined,
      peers: [dualStack(2)],
      probing: undefined,
      readiness: { ready: true, checks: {} },
      registry: new Registry(),
      etcdEndpoints: [],
      etcdCheck: () => Promise.resolve(),
    });
    expect(model.peers[0]?.paths[1]).toEqual({ family: 6, subnet: "fd66:0:0:2::/64", publicIP: "fd77::2", notProbed: "the udp backend carries no IPv6" });
  });
});
