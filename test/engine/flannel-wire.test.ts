/**
 * weft's udp engine against a peer that speaks flanneld's udp wire format (flannel-compat §5), emulated
 * byte for byte by a small UDP program: no flanneld binary is available here.
 *
 *     <p>a                                         <p>b
 *   +---------------------------+               +-----------------------------------+
 *   | tun wt0 10.70.1.0/32      |               | "flanneld" emulator: UDP :8285     |
 *   |  route 10.70.0.0/16       |               |  answers ICMP echo for 10.70.2.0   |
 *   |  (weft engine, udp mode)  |               |  with flannel's framing            |
 *   | ul0 192.168.90.1/24 ------+---- veth -----+- ul0 192.168.90.2/24             |
 *   +---------------------------+               +-----------------------------------+
 *
 * flanneld's framing: the UDP payload is the whole inner IPv4 packet, no header of its own;
 * source port = destination port = the configured port; the sender decrements the inner TTL.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/kernel/tun-routing.js";
import { terminatePids } from "../../src/process/pids.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, ping, type TwoHosts } from "./two-hosts.js";

/** The emulated flanneld: logs every datagram as JSON and answers echo requests to 10.70.2.0. */
const FLANNELD_EMULATOR = `
const dgram = require("node:dgram");
const socket = dgram.createSocket("udp4");
const checksum = (buffer) => {
  let sum = 0;
  for (let i = 0; i < buffer.length; i += 2) sum += (buffer[i] << 8) + (buffer[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
};
socket.on("message", (payload, rinfo) => {
  console.log(JSON.stringify({ from: rinfo.address, port: rinfo.port, hex: payload.toString("hex") }));
  const ihl = (payload[0] & 15) * 4;
  if (payload[9] !== 1 || payload[ihl] !== 8) return;
  const reply = Buffer.from(payload);
  payload.copy(reply, 12, 16, 20);
  payload.copy(reply, 16, 12, 16);
  reply[8] = 63; // flanneld's proxy decrements the TTL of what it sends
  reply.writeUInt16BE(0, 10);
  reply.writeUInt16BE(checksum(reply.subarray(0, ihl)), 10);
  reply[ihl] = 0;
  reply.writeUInt16BE(0, ihl + 2);
  reply.writeUInt16BE(checksum(reply.subarray(ihl)), ihl + 2);
  socket.send(reply, 8285, rinfo.address);
});
socket.bind(8285, "${UNDERLAY_B}", () => console.log(JSON.stringify({ ready: true })));
`;

let hosts: TwoHosts;
let engine: Engine;
let emulator: ChildProcess;
const datagrams: { from: string; port: number; hex: string }[] = [];

beforeAll(async () => {
  hosts = await createTwoHosts();
  engine = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
  emulator = spawn("ip", ["netns", "exec", hosts.b, process.execPath, "-e", FLANNELD_EMULATOR], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    emulator.once("exit", (code) => reject(new Error(`the flanneld emulator exited (${code})`)));
    createInterface({ input: emulator.stdout! }).on("line", (line) => {
      const message = JSON.parse(line) as { ready?: boolean; from: string; port: number; hex: string };
      if (message.ready) resolve();
      else datagrams.push(message);
    });
  });
});

afterAll(async () => {
  if (emulator?.pid) await terminatePids([emulator.pid], 1000);
  engine?.close();
  await hosts?.destroy();
});

it("sends flanneld's framing and accepts flanneld's replies", async () => {
  const result = await ping(hosts.a, TUN_B, { count: 2, size: 56 });
  expect(result.received, result.output).toBe(2);
  // The reply left the emulator with TTL 63; weft decrements it once more on the way in.
  expect(result.ttl).toBe(62);

  const request = datagrams.find((datagram) => datagram.hex.startsWith("45"));
  expect(request, JSON.stringify(datagrams)).toBeDefined();
  const payload = Buffer.from(request!.hex, "hex");
  expect(request!.from).toBe(UNDERLAY_A);
  expect(request!.port).toBe(8285); // same port on both ends
  expect(payload.length).toBe(20 + 8 + 56); // the whole inner packet and nothing else
  expect(payload.readUInt16BE(2)).toBe(payload.length); // IPv4 total length = UDP payload length
  expect(payload[8]).toBe(63); // TTL 64 decremented once by the sending engine
  expect(payload[9]).toBe(1); // ICMP
  expect([...payload.subarray(12, 16)].join(".")).toBe(TUN_A);
  expect([...payload.subarray(16, 20)].join(".")).toBe(TUN_B);
  // The header checksum was patched after the TTL change: it still sums to 0xffff.
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += payload.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  expect(sum).toBe(0xffff);
});
