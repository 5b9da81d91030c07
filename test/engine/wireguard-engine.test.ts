/**
 * wireguard mode between two weft engines (topology: see two-hosts.ts; both TUNs MTU 1420 =
 * 1500 - 80, flannel's wireguard overhead). The handshake runs in this process
 * (src/engine/wireguard/), every packet is sealed and opened in the engine's threads.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { generateStaticKeys } from "../../src/engine/wireguard/noise.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { sleep } from "../../src/async/sleep.js";
import {
  NETWORK, STRANGER, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B,
  createTwoHosts, iperfAToB, ping, type TwoHosts,
} from "./two-hosts.js";
import { WIREGUARD_PORT, openWireguardPair } from "./wireguard/engine-pair.js";

/** Sends datagrams (hex) from `from` in namespace B to A's WireGuard port. */
async function sendFromB(hosts: TwoHosts, from: string, datagrams: readonly string[]): Promise<void> {
  const script = `
    const socket = require("node:dgram").createSocket("udp4");
    const items = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    socket.bind({ address: ${JSON.stringify(from)} }, async () => {
      for (const hex of items) await new Promise((resolve, reject) => socket.send(Buffer.from(hex, "hex"), ${PORT}, ${JSON.stringify(UNDERLAY_A)}, (e) => e ? reject(e) : resolve()));
      socket.close();
    });`;
  await execInNamespace(hosts.b, process.execPath, ["-e", script], { input: JSON.stringify(datagrams) });
}

/** The next transport data message B sends to A, captured on A's underlay (python3: Node has no packet sockets). */
function captureDataFromB(hosts: TwoHosts): Promise<string> {
  const script = [
    "import socket, struct",
    "s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))",
    "s.bind(('ul0', 0))",
    "s.settimeout(10)",
    "while True:",
    "    p = s.recv(65535)",
    "    ihl = (p[0] & 15) * 4",
    "    if p[9] != 17 or socket.inet_ntoa(p[12:16]) != '" + UNDERLAY_B + "': continue",
    "    udp = p[ihl:]",
    "    if struct.unpack('!H', udp[0:2])[0] != " + String(PORT) + " or len(udp) < 8 + 64 or udp[8] != 4: continue",
    "    print(udp[8:].hex()); break",
  ].join("\n");
  return execInNamespace(hosts.a, "python3", ["-c", script], { timeoutMs: 15_000 }).then((r) => r.stdout.trim());
}

let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;
const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
const PORT = WIREGUARD_PORT;

beforeAll(async () => {
  hosts = await createTwoHosts();
  ({ engineA, engineB } = await openWireguardPair(hosts, { a: keysA, b: keysB }));
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("wireguard engine", () => {
  it("handshakes on the first packet and pings both ways", async () => {
    // The first echo request only triggers the handshake (no packet is queued meanwhile).
    await ping(hosts.a, TUN_B, { count: 2 });
    const ab = await ping(hosts.a, TUN_B, { count: 3 });
    expect(ab.received, ab.output).toBe(3);
    const ba = await ping(hosts.b, TUN_A, { count: 3 });
    expect(ba.received, ba.output).toBe(3);
    const status = engineA.wireguardStatus();
    expect(status?.publicKey).toBe(keysA.publicKey.toString("base64"));
    expect(status?.peers[0]?.handshakes).toBeGreaterThanOrEqual(1);
    expect(engineB.counters().outside.detail.handshake_messages).toBeGreaterThanOrEqual(1);
  });

  it("carries a maximum-size DF ping (1420-byte packets)", async () => {
    const result = await ping(hosts.a, TUN_B, { count: 2, size: 1420 - 28, dontFragment: true });
    expect(result.received, result.output).toBe(2);
  });

  it("moves a TCP stream", async () => {
    const report = await iperfAToB(hosts);
    expect(report.end.sum_received.bytes).toBeGreaterThan(5_000_000);
    const b = engineB.counters();
    expect(b.outside.drops.bad_mac).toBe(0);
    expect(b.outside.drops.replay).toBe(0);
    console.log(`wireguard engine iperf3: ${(report.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gb/s`);
  });

  it("drops a replayed message, and it does not move the peer's endpoint", async () => {
    let message: string | undefined;
    const captured = captureDataFromB(hosts).then((hex) => (message = hex));
    // Until the capture (a python3 start on a busy machine) has seen one: B keeps sending data.
    for (let i = 0; i < 40 && message === undefined; i++) {
      await ping(hosts.b, TUN_A, { count: 1 });
      await sleep(100);
    }
    await captured;
    if (message === undefined) throw new Error("no transport message from B was captured");
    expect(message.length).toBeGreaterThan(64);
    const before = engineA.counters().outside.drops;
    await sendFromB(hosts, STRANGER, [message, message]);
    await expect.poll(() => engineA.counters().outside.drops.replay).toBe((before.replay ?? 0) + 2);
    expect(engineA.counters().outside.drops.bad_mac).toBe(before.bad_mac);
    expect(engineA.wireguardStatus()?.peers[0]?.endpoint).toBe(`${UNDERLAY_B}:${PORT}`);
  });

  it("counts hostile datagrams by reason and keeps forwarding", async () => {
    const before = engineA.counters().outside;
    const drops = engineA.wireguardStatus()?.handshakeDrops ?? {};
    const header = (type: number, index: number) => {
      const b = Buffer.alloc(48);
      b.writeUInt32LE(type, 0);
      b.writeUInt32LE(index, 4);
      return b.toString("hex");
    };
    const initiationGarbage = Buffer.alloc(148);
    initiationGarbage[0] = 1;
    await sendFromB(hosts, STRANGER, [
      "010203",                              // truncated
      header(9, 1),                          // unknown type
      header(4 | (1 << 8), 1),               // type 4 with a reserved byte set
      header(4, 0xdeadbeef),                 // no such session
      "04000000" + "00".repeat(20),          // shorter than a transport header + tag
      initiationGarbage.toString("hex"),     // an initiation with a bad mac1
      "01" + "00".repeat(146),               // an initiation of the wrong size (147 bytes)
    ]);
    await expect.poll(() => engineA.counters().outside.drops.unknown_session).toBe((before.drops.unknown_session ?? 0) + 1);
    const after = engineA.counters().outside;
    expect(after.drops.unknown_type).toBe((before.drops.unknown_type ?? 0) + 2);
    expect(after.drops.truncated).toBe((before.drops.truncated ?? 0) + 3);
    await expect.poll(() => engineA.wireguardStatus()?.handshakeDrops.bad_mac1).toBe((drops.bad_mac1 ?? 0) + 1);
    const result = await ping(hosts.a, TUN_B, { count: 2 });
    expect(result.received, result.output).toBe(2);
  });

  it("zeroes and forgets a removed peer's sessions at once", async () => {
    expect(engineA.removePeer(SUBNET_B)).toBe(true);
    expect(engineA.wireguardStatus()?.peers).toEqual([]);
    const before = engineB.counters().outside.drops.unknown_session ?? 0;
    // B still has its session and sends on it: A no longer knows the receiver index.
    await ping(hosts.b, TUN_A, { count: 1 });
    await expect.poll(() => engineA.counters().outside.drops.unknown_session).toBeGreaterThan(0);
    expect(engineB.counters().outside.drops.unknown_session).toBe(before);
    engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: keysB.publicKey.toString("base64"), port: PORT });
    await ping(hosts.a, TUN_B, { count: 2, timeoutSeconds: 2 });
    const again = await ping(hosts.a, TUN_B, { count: 3 });
    expect(again.received, again.output).toBe(3);
  });

  it("follows the peer to a new address (roaming), learned from its authenticated packets", async () => {
    // B restarts on another address of its host with the same key; A's lease data still says UNDERLAY_B.
    engineB.close();
    engineB = openEngine({ mode: "wireguard", tunName: "wt0", mtu: 1420, bindAddress: STRANGER, netns: hosts.b, icmpSource: TUN_B, port: PORT, wireguard: { privateKey: keysB.privateKey } });
    await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
    engineB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A, publicKey: keysA.publicKey.toString("base64"), port: PORT });
    await ping(hosts.b, TUN_A, { count: 2, timeoutSeconds: 2 });
    const ba = await ping(hosts.b, TUN_A, { count: 3 });
    expect(ba.received, ba.output).toBe(3);
    expect(engineA.wireguardStatus()?.peers[0]?.endpoint).toBe(`${STRANGER}:${PORT}`);
    const ab = await ping(hosts.a, TUN_B, { count: 3 });
    expect(ab.received, ab.output).toBe(3);
  });
});
