/**
 * Regressions for what native/fuzz (libFuzzer + ASan/UBSan, see native/README.md "Fuzzing")
 * found in the engine, each reproduced through the TypeScript API with real packets
 * (topology: see two-hosts.ts; only host A runs an engine here, B is the underlay peer).
 * Crafted packets enter A's TUN from a raw IP_HDRINCL socket in namespace A (python3: Node
 * has no raw sockets).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { sleep } from "../../src/async/sleep.js";
import { waitUntil } from "../../src/lab/readiness.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, UNDERLAY_A, UNDERLAY_B, createTwoHosts, type TwoHosts } from "./two-hosts.js";

const FROM_B = "10.70.2.5"; // in SUBNET_B, B's subnet

/** Writes raw IPv4 packets (hex, header included; the kernel fills in length and checksum)
 * one by one, 100 ms apart so the engine reads each on its own, into namespace A's routing. */
async function sendRawFromA(hosts: TwoHosts, destination: string, packets: readonly string[]): Promise<void> {
  const script = [
    "import socket, sys, time",
    "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)",
    "for h in sys.argv[2:]:",
    "    s.sendto(bytes.fromhex(h), (sys.argv[1], 0))",
    "    time.sleep(0.1)",
  ].join("\n");
  await execInNamespace(hosts.a, "python3", ["-c", script, destination, ...packets]);
}

function hexAddress(address: string): string {
  return address.split(".").map((part) => Number(part).toString(16).padStart(2, "0")).join("");
}

/** An IPv4 header (no options) with protocol `protocol` from `source` to `destination`, then `payloadHex`. */
function ipv4Hex(source: string, destination: string, protocol: number, payloadHex: string): string {
  const total = (20 + payloadHex.length / 2).toString(16).padStart(4, "0");
  return `4500${total}00010000 40${protocol.toString(16).padStart(2, "0")}0000`.replace(/ /g, "") +
    hexAddress(source) + hexAddress(destination) + payloadHex;
}

/**
 * Sends `datagrams` (hex) from B's underlay address to A's udp port as ONE UDP GSO message
 * (UDP_SEGMENT = the first one's size): they reach A's engine as one GRO super-datagram, so
 * one recvmmsg() batch, which is where A coalesces.
 */
async function sendBatchFromB(hosts: TwoHosts, datagrams: readonly string[]): Promise<void> {
  const script = [
    "import socket, sys",
    "parts = [bytes.fromhex(h) for h in sys.argv[1:]]",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
    `s.bind(("${UNDERLAY_B}", 0))`,
    "s.setsockopt(socket.IPPROTO_UDP, 103, len(parts[0]))  # UDP_SEGMENT",
    `s.sendto(b"".join(parts), ("${UNDERLAY_A}", 8285))`,
  ].join("\n");
  await execInNamespace(hosts.b, "python3", ["-c", script, ...datagrams]);
}

/**
 * Starts capturing TCP packets to `port` that namespace A's IP layer delivers (raw socket,
 * arrival order); resolves with the first payload byte of each, `count` of them or what came
 * within 3 s.
 */
/**
 * Captures the first payload byte of `count` TCP segments to `port` arriving in namespace A.
 * Resolves `open` once the raw socket exists (the script says so on a file), `captured` with the bytes.
 */
function captureTcpInA(hosts: TwoHosts, port: number, count: number): { open: Promise<void>; captured: Promise<string> } {
  const dir = mkdtempSync(join(tmpdir(), "weft-capture-"));
  const marker = join(dir, "open");
  const script = [
    "import socket, struct, sys",
    "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)",
    "open(sys.argv[1], 'w').close()",
    "s.settimeout(3)",
    "seen = ''",
    "try:",
    `    while len(seen) < ${count}:`,
    "        p = s.recv(70000)",
    "        ihl = (p[0] & 15) * 4",
    "        thl = (p[ihl + 12] >> 4) * 4",
    `        if struct.unpack('!H', p[ihl + 2:ihl + 4])[0] == ${port} and len(p) > ihl + thl:`,
    "            seen += chr(p[ihl + thl])",
    "except socket.timeout:",
    "    pass",
    "print(seen)",
  ].join("\n");
  const captured = execInNamespace(hosts.a, "python3", ["-c", script, marker]).then((result) => result.stdout.trim());
  const open = Promise.race([
    waitUntil("the capture's raw socket to be open", () => existsSync(marker)),
    captured.then(() => {
      if (!existsSync(marker)) throw new Error("the capture script ended before it opened its raw socket");
    }),
  ]);
  void Promise.allSettled([open, captured]).then(() => rmSync(dir, { recursive: true, force: true }));
  return { open, captured };
}

/** A TCP segment (ACK, window 500) with valid checksums; `ipOptions` (hex, a multiple of 4 bytes) go into the IP header. */
function tcpSegmentHex(source: string, destination: string, seq: number, payload: Buffer, ipOptions = ""): string {
  const tcp = Buffer.alloc(20 + payload.length);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(seq, 4);
  tcp.writeUInt32BE(1, 8);
  tcp[12] = 5 << 4;
  tcp[13] = 0x10;
  tcp.writeUInt16BE(500, 14);
  payload.copy(tcp, 20);
  const pseudo = Buffer.concat([Buffer.from(hexAddress(source) + hexAddress(destination), "hex"), Buffer.from([0, 6, tcp.length >> 8, tcp.length & 0xff])]);
  tcp.writeUInt16BE(internetChecksum(Buffer.concat([pseudo, tcp])), 16);
  const header = Buffer.from(ipv4Hex(source, destination, 6, "").slice(0, 40) + ipOptions, "hex");
  header[0] = 0x40 | (header.length / 4);
  header.writeUInt16BE(header.length + tcp.length, 2);
  header.writeUInt16BE(0x4000, 6);
  header.writeUInt16BE(internetChecksum(header), 10);
  return Buffer.concat([header, tcp]).toString("hex");
}

function internetChecksum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += bytes.readUInt16BE(i);
  if (bytes.length % 2) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after 3 s waiting for ${what}`);
    await sleep(20);
  }
  await sleep(50); // let the engine finish the read it is counting
}

let hosts: TwoHosts;
let engine: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  engine = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
});

afterAll(async () => {
  engine?.close();
  await hosts?.destroy();
});

describe("engine regressions found by fuzzing", () => {
  it("sends no ICMP error about an ICMP packet that ends before its type byte (fuzz_inside: read past the packet)", async () => {
    const nowhere = "10.70.99.1";
    const echo = ipv4Hex(TUN_A, nowhere, 1, "0800f7fe00000001"); // type 8: a query, answered
    const headerOnly = ipv4Hex(TUN_A, nowhere, 1, ""); // no ICMP header: may be an error, not answered
    const before = engine.counters().inside;
    await sendRawFromA(hosts, nowhere, [echo, headerOnly]);
    await until(() => (engine.counters().inside.drops.no_route ?? 0) >= (before.drops.no_route ?? 0) + 2, "2 no_route drops");
    const after = engine.counters().inside;
    // The header-only packet was read into the buffer the echo left behind: before the fix the
    // echo's type byte decided, and it got an error too.
    expect((after.detail.icmp_sent ?? 0) - (before.detail.icmp_sent ?? 0)).toBe(1);
  });

  it("keeps a TCP connection in order when a segment with IP options follows buffered ones (found with fuzz_outside's GRO oracle)", async () => {
    // One batch: a mergeable segment (payload "A..."), then the next one of the same
    // connection carrying IP options (4 x NOP; payload "B..."), which is never merged. Before
    // the fix it was written at once and the buffered segment after it.
    const first = tcpSegmentHex(FROM_B, TUN_A, 1000, Buffer.alloc(1000, "A"));
    const withOptions = tcpSegmentHex(FROM_B, TUN_A, 2000, Buffer.alloc(100, "B"), "01010101");
    const capture = captureTcpInA(hosts, 5201, 2);
    await capture.open;
    const before = engine.counters().outside;
    await sendBatchFromB(hosts, [first, withOptions]);
    expect(await capture.captured).toBe("AB");
    const after = engine.counters().outside;
    expect(after.packets - before.packets).toBe(2);
    expect(after.batches - before.batches).toBe(1); // both in one recvmmsg(): the case that reordered
  });
});
