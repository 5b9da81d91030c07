/**
 * weft's userspace WireGuard against an independent implementation: Debian's wireguard-go,
 * configured with wg(8) by hand the way flanneld's wireguard backend configures its device
 * (its own subnet address as /32, a route for the whole Network through the device, one peer
 * per lease: PublicKey, endpoint PublicIP:ListenPort, AllowedIPs the lease's subnet, the PSK).
 * The device name is unique per run (flanneld calls it flannel-wg): wg's control sockets in
 * /var/run/wireguard are shared by every namespace on the machine.
 *
 *     <p>a  (weft engine, in-process)            <p>b  (wireguard-go + wg)
 *   +------------------------------+            +------------------------------+
 *   | tun wt0  10.70.1.0/32        |            | tun <p>wg  10.70.2.0/32      |
 *   |  route 10.70.0.0/16, MTU 1420|            |  route 10.70.0.0/16, MTU 1420|
 *   |  listen 192.168.90.1:51820   |            |  listen 192.168.90.2:51820   |
 *   | ul0 192.168.90.1/24 ---------+--- veth ---+--------- ul0 192.168.90.2/24 |
 *   +------------------------------+            +------------------------------+
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../../src/engine/engine.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { addressTun } from "../../../src/kernel/tun-routing.js";
import { execInNamespace, ipBatch } from "../../../src/lab/netns.js";
import { WireguardDevice } from "../../../src/kernel/wireguard-device.js";
import { startWireguardGoRetryingUapi } from "../../support/wireguard-go.js";
import { terminatePids } from "../../../src/process/pids.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, ping, type TwoHosts } from "../../engine/two-hosts.js";

const PORT = 51820;
const MTU = 1500 - 80; // flannel's wireguard overhead
const REKEY_AFTER_MS = 4000;

let hosts: TwoHosts;
let engine: Engine;
let dir: string;
let device: string;
let wgPid: number | undefined;
const weftKeys = generateStaticKeys();
const psk = generateStaticKeys().privateKey; // any 32 random bytes
let goPublicKey: string;

async function wg(args: string[]): Promise<string> {
  return (await execInNamespace(hosts.b, "wg", args)).stdout;
}

async function newGoKey(name: string): Promise<string> {
  const privateKey = (await execInNamespace(hosts.b, "wg", ["genkey"])).stdout.trim();
  await writeFile(join(dir, name), `${privateKey}\n`, { mode: 0o400 });
  return (await execInNamespace(hosts.b, "wg", ["pubkey"], { input: `${privateKey}\n` })).stdout.trim();
}

function setWeftPeer(publicKey: string): void {
  engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey, port: PORT });
}

/** sha256 of `bytes` random bytes sent over TCP from `from` to `to`'s TUN address, both ends' digests. */
async function transfer(from: string, to: string, toAddress: string, bytes: number): Promise<{ sent: string; received: string }> {
  const receiver = [
    "const {createHash}=require('crypto');const h=createHash('sha256');let n=0;",
    `const s=require('net').createServer(c=>{c.on('data',d=>{h.update(d);n+=d.length});c.on('end',()=>{console.log(h.digest('hex'),n);s.close()})}).listen(5301,'${toAddress}',()=>console.error('listening'));`,
    "setTimeout(()=>process.exit(3),30000).unref();",
  ].join("");
  const sender = [
    "const {createHash,randomBytes}=require('crypto');",
    `const data=randomBytes(${bytes});console.log(createHash('sha256').update(data).digest('hex'));`,
    `const c=require('net').connect(5301,'${toAddress}',()=>c.end(data));`,
  ].join("");
  const server = execInNamespace(to, process.execPath, ["-e", receiver], { timeoutMs: 40_000 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const client = await execInNamespace(from, process.execPath, ["-e", sender], { timeoutMs: 40_000 });
  const result = await server;
  const [digest, count] = result.stdout.trim().split(" ");
  expect(Number(count)).toBe(bytes);
  return { sent: client.stdout.trim(), received: digest ?? "" };
}

beforeAll(async () => {
  hosts = await createTwoHosts();
  dir = await mkdtemp(join(tmpdir(), "weft-wg-"));
  device = `${hosts.prefix}wg`;
  await writeFile(join(dir, "psk"), `${psk.toString("base64")}\n`, { mode: 0o400 });
  goPublicKey = await newGoKey("go-key");

  engine = openEngine({
    mode: "wireguard", tunName: "wt0", mtu: MTU, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A, port: PORT,
    wireguard: { privateKey: weftKeys.privateKey, presharedKey: psk, timers: { rekeyAfterMs: REKEY_AFTER_MS, keepaliveMs: 1000, rekeyTimeoutMs: 1000 } },
  });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  setWeftPeer(goPublicKey);

  // Started as weft's device backend starts it (kernel/wireguard-go.ts), configured by hand below.
  wgPid = await startWireguardGoRetryingUapi(new WireguardDevice(device, hosts.b), dir);
  await wg(["set", device, "private-key", join(dir, "go-key"), "listen-port", String(PORT),
    "peer", weftKeys.publicKey.toString("base64"), "preshared-key", join(dir, "psk"),
    "endpoint", `${UNDERLAY_A}:${PORT}`, "allowed-ips", SUBNET_A.toString()]);
  await ipBatch(hosts.b, [
    `address add ${TUN_B}/32 dev ${device}`,
    `link set ${device} mtu ${MTU} up`,
    `route add ${NETWORK.toString()} dev ${device} scope link`,
  ]);
}, 30_000);

afterAll(async () => {
  engine?.close();
  if (wgPid !== undefined) await terminatePids([wgPid], 2000);
  await hosts?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("weft wireguard ⇄ wireguard-go", () => {
  it("wireguard-go initiates: pings from its side, then from weft's", async () => {
    await ping(hosts.b, TUN_A, { count: 2, timeoutSeconds: 2 }); // the first request waits for the handshake
    const ba = await ping(hosts.b, TUN_A, { count: 5 });
    expect(ba.received, ba.output).toBe(5);
    const ab = await ping(hosts.a, TUN_B, { count: 5 });
    expect(ab.received, ab.output).toBe(5);
    const shown = await wg(["show", device, "latest-handshakes"]);
    expect(shown).toContain(weftKeys.publicKey.toString("base64"));
    expect(Number(shown.trim().split(/\s+/)[1])).toBeGreaterThan(0);
  });

  it("carries DF pings at the advertised MTU both ways, and not one byte more", async () => {
    const ab = await ping(hosts.a, TUN_B, { count: 2, size: MTU - 28, dontFragment: true });
    expect(ab.received, ab.output).toBe(2);
    const ba = await ping(hosts.b, TUN_A, { count: 2, size: MTU - 28, dontFragment: true });
    expect(ba.received, ba.output).toBe(2);
    const tooBig = await ping(hosts.a, TUN_B, { count: 1, size: MTU - 27, dontFragment: true });
    expect(tooBig.received).toBe(0);
  });

  it("transfers 4 MB each way with matching sha256", async () => {
    const ab = await transfer(hosts.a, hosts.b, TUN_B, 4 << 20);
    expect(ab.received).toBe(ab.sent);
    const ba = await transfer(hosts.b, hosts.a, TUN_A, 4 << 20);
    expect(ba.received).toBe(ba.sent);
    const c = engine.counters();
    expect(c.outside.drops.bad_mac).toBe(0);
    expect(c.outside.drops.replay).toBe(0);
  }, 60_000);

  it("follows a key rotation on the wireguard-go side (the lease's new PublicKey)", async () => {
    const rotated = await newGoKey("go-key-2");
    await wg(["set", device, "private-key", join(dir, "go-key-2")]);
    setWeftPeer(rotated); // what a lease update with the new BackendData does
    await ping(hosts.a, TUN_B, { count: 2, timeoutSeconds: 2 });
    const ab = await ping(hosts.a, TUN_B, { count: 5 });
    expect(ab.received, ab.output).toBe(5);
    const status = engine.wireguardStatus();
    expect(status?.peers.map((peer) => peer.publicKey)).toEqual([rotated]);
  }, 30_000);

  // Only the initiator rekeys on age (whitepaper §6.2); since the rotation weft is the initiator.
  it(`rekeys past the (shortened, ${REKEY_AFTER_MS} ms) REKEY_AFTER_TIME as initiator without losing the stream`, async () => {
    const before = engine.wireguardStatus()?.handshakesCompleted ?? 0;
    const run = await execInNamespace(hosts.a, "ping", ["-n", "-q", "-i", "0.1", "-c", "100", "-W", "1", TUN_B], { allowFailure: true });
    const received = Number(/(\d+) received/.exec(run.stdout)?.[1] ?? 0);
    const after = engine.wireguardStatus()?.handshakesCompleted ?? 0;
    expect(after - before, "handshakes during 10 s of traffic").toBeGreaterThanOrEqual(2);
    expect(received, run.stdout).toBeGreaterThanOrEqual(98);
  }, 30_000);

});
