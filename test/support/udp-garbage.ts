import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execInNamespace } from "../../src/lab/netns.js";

/**
 * Hostile datagrams for an overlay's data port (the resilience suite's garbage row): random
 * bytes, truncated and oversized datagrams, and ones whose headers look right up to one field
 * (an unknown VNI, another VTEP's MAC, a non-IPv4 frame, an inner source outside every lease).
 * None of them is a packet a container may receive, so each must be dropped, and counted once.
 */
export type GarbageEncapsulation = "vxlan" | "udp";

export interface GarbageTarget {
  encapsulation: GarbageEncapsulation;
  /** The receiver's VNI and VtepMAC (vxlan): the "almost right" datagrams carry them. */
  vni?: number;
  vtepMac?: string;
  /** An inner destination in the receiver's subnet with no container behind it. */
  innerDestination: string;
  /** An inner source in no host's subnet. */
  innerSource: string;
}

const VXLAN_HEADER = 8;
const ETHERNET_HEADER = 14;

function ipv4Bytes(text: string): Buffer {
  return Buffer.from(text.split(".").map(Number));
}

function randomBytes(random: () => number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** An IPv4/UDP packet with a correct header checksum (so only the address can be wrong). */
function innerPacket(source: string, destination: string, payload: Buffer): Buffer {
  const packet = Buffer.alloc(28 + payload.length);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[8] = 64;
  packet[9] = 17;
  ipv4Bytes(source).copy(packet, 12);
  ipv4Bytes(destination).copy(packet, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += packet.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  packet.writeUInt16BE(~sum & 0xffff, 10);
  packet.writeUInt16BE(40000, 20);
  packet.writeUInt16BE(9, 22);
  packet.writeUInt16BE(8 + payload.length, 24);
  payload.copy(packet, 28);
  return packet;
}

function vxlanFrame(vni: number, destinationMac: Buffer, ethertype: number, inner: Buffer, flags = 0x08): Buffer {
  const frame = Buffer.alloc(VXLAN_HEADER + ETHERNET_HEADER + inner.length);
  frame[0] = flags;
  frame.writeUIntBE(vni & 0xffffff, 4, 3);
  destinationMac.copy(frame, VXLAN_HEADER);
  Buffer.from([0x02, 0, 0, 0, 0x66, 0x66]).copy(frame, VXLAN_HEADER + 6);
  frame.writeUInt16BE(ethertype, VXLAN_HEADER + 12);
  inner.copy(frame, VXLAN_HEADER + ETHERNET_HEADER);
  return frame;
}

/** `count` datagrams of every kind in turn, drawn from `random` (seeded: a failure replays). */
export function garbageDatagrams(target: GarbageTarget, count: number, random: () => number): Buffer[] {
  const pick = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const payload = () => randomBytes(random, pick(0, 1200));
  const stray = () => innerPacket(target.innerSource, target.innerDestination, payload());
  const mac = Buffer.from((target.vtepMac ?? "02:00:00:00:00:00").split(":").map((part) => parseInt(part, 16)));
  const vni = target.vni ?? 1;
  const kinds: (() => Buffer)[] = [
    () => randomBytes(random, pick(0, 1500)),
    () => randomBytes(random, pick(0, target.encapsulation === "vxlan" ? VXLAN_HEADER + ETHERNET_HEADER + 19 : 19)),
    () => randomBytes(random, pick(9000, 30_000)),
  ];
  if (target.encapsulation === "vxlan") {
    kinds.push(
      () => vxlanFrame((vni + pick(1, 0xfffffe)) & 0xffffff || 2, mac, 0x0800, stray()), // unknown VNI
      () => vxlanFrame(vni, randomBytes(random, 6), 0x0800, stray()), // another VTEP's MAC
      () => vxlanFrame(vni, mac, 0x0806, payload()), // not IPv4 (ARP)
      () => vxlanFrame(vni, mac, 0x0800, stray()), // inner source in no lease
      () => vxlanFrame(vni, mac, 0x0800, stray(), 0x0c), // reserved flag bits set
      () => vxlanFrame(vni, mac, 0x0800, stray().subarray(0, pick(1, 27))), // inner header cut short
    );
  } else {
    kinds.push(
      () => stray(), // inner source in no lease
      () => { const packet = stray(); packet.writeUInt16BE(packet.length + 100, 2); return packet; }, // claims more than it holds
      () => { const packet = stray(); packet[0] = 0x60 | (packet[0]! & 0x0f); return packet; }, // not IPv4
    );
  }
  return Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!());
}

// The sender runs inside a lab namespace: a plain script for `node -e` (argv: file, host, port, rate).
const SENDER = `
const fs = require("node:fs"), dgram = require("node:dgram");
const [file, host, port, rate] = process.argv.slice(1);
const data = fs.readFileSync(file), list = [];
for (let at = 0; at < data.length; at += 4 + data.readUInt32BE(at)) list.push(data.subarray(at + 4, at + 4 + data.readUInt32BE(at)));
const socket = dgram.createSocket("udp4");
const perTick = Math.max(1, Math.round(Number(rate) / 100));
let sent = 0, failed = 0, next = 0;
const done = () => { if (sent + failed === list.length) { process.stdout.write(JSON.stringify({ sent, failed })); socket.close(); } };
socket.on("error", () => undefined);
const tick = () => {
  for (const end = Math.min(list.length, next + perTick); next < end; next++) socket.send(list[next], Number(port), host, (error) => { if (error) failed++; else sent++; done(); });
  if (next < list.length) setTimeout(tick, 10);
};
tick();
`;

/** Sends `datagrams` from `namespace` to host:port at about `ratePerSecond`; returns how many left the socket. */
export async function sendDatagrams(namespace: string, host: string, port: number, datagrams: readonly Buffer[], ratePerSecond: number): Promise<{ sent: number; failed: number }> {
  const dir = await mkdtemp(join(tmpdir(), "weft-garbage-"));
  try {
    const file = join(dir, "datagrams");
    const framed = datagrams.flatMap((datagram) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(datagram.length);
      return [length, datagram];
    });
    await writeFile(file, Buffer.concat(framed));
    const result = await execInNamespace(namespace, process.execPath, ["-e", SENDER, file, host, String(port), String(ratePerSecond)], { timeoutMs: 120_000 });
    return JSON.parse(result.stdout) as { sent: number; failed: number };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
