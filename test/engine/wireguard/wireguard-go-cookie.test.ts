/**
 * weft's cookie replies and key rotation against an independent implementation, Debian's
 * wireguard-go, set up as flanneld sets up its device (test/support/wireguard-go.ts):
 *
 *     <p>a  (weft engine, in-process)            <p>b  (wireguard-go + wg)
 *   | tun wt0  10.70.1.0/32, MTU 1420  |        | tun <p>wg  10.70.2.0/32, MTU 1420 |
 *   |  listen 192.168.90.1:51820       |        |  listen 192.168.90.2:51820        |
 *   | ul0 192.168.90.1/24 -------------+- veth -+------------- ul0 192.168.90.2/24  |
 *
 * weft's under-load threshold is 0: every initiation finds it under load. wireguard-go's first
 * initiation gets a cookie reply, which it must open (XChaCha20-Poly1305 under its view of our
 * cookie key, AD its mac1) and answer with a mac2 on its retry (REKEY_TIMEOUT, 5 s, later)
 * that our check accepts. Then weft rotates its key as the backend does on a new key file, and
 * wireguard-go's peer is replaced as flanneld replaces it on the lease change; last, on an engine
 * not under load, how much a one-way stream from weft loses across such a rotation.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../../src/engine/engine.js";
import { startPingStream } from "../../../src/lab/ping-stream.js";
import { sleep } from "../../../src/async/sleep.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { addressTun } from "../../../src/kernel/tun-routing.js";
import { waitUntil } from "../../../src/lab/readiness.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, ping, type TwoHosts } from "../two-hosts.js";
import { newWireguardGoKey, startFlannelStyleWireguardGo, type RunningWireguardGo } from "../../support/wireguard-go.js";

const PORT = 51820;
const MTU = 1500 - 80;

let hosts: TwoHosts;
let engine: Engine;
let dir: string;
let go: RunningWireguardGo | undefined;
let weftKeys = generateStaticKeys();

beforeAll(async () => {
  hosts = await createTwoHosts();
  dir = await mkdtemp(join(tmpdir(), "weft-wgc-"));
  const goPublicKey = await newWireguardGoKey(hosts.b, dir, "go-key");
  engine = openEngine({
    mode: "wireguard", tunName: "wt0", mtu: MTU, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A, port: PORT,
    wireguard: { privateKey: weftKeys.privateKey, defence: { underLoadMessagesPerSecond: 0, rateLimits: { perSecond: 20, burst: 5, maxSources: 64 } } },
  });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: goPublicKey, port: PORT });
  go = await startFlannelStyleWireguardGo({
    namespace: hosts.b, device: `${hosts.prefix}wg`, dir, listenPort: PORT, keyFile: "go-key", address: TUN_B, network: NETWORK.toString(), mtu: MTU,
  });
  await go.wg(["set", go.device, "peer", weftKeys.publicKey.toString("base64"), "endpoint", `${UNDERLAY_A}:${PORT}`, "allowed-ips", SUBNET_A.toString()]);
}, 30_000);

afterAll(async () => {
  engine?.close();
  await go?.stop();
  await hosts?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("weft ⇄ wireguard-go: cookies under load, key rotation", () => {
  it("wireguard-go opens weft's cookie reply and completes the handshake with a mac2 weft accepts", async () => {
    // The first echo requests wait in wireguard-go's queue through the cookie round and its 5 s retry.
    const first = await ping(hosts.b, TUN_A, { count: 1, timeoutSeconds: 12 });
    const status = engine.wireguardStatus()!;
    expect(status.cookieRepliesSent, JSON.stringify(status.handshakeDrops)).toBeGreaterThanOrEqual(1);
    expect(status.handshakeDrops.mac2_invalid).toBe(0);
    expect(status.handshakesCompleted).toBeGreaterThanOrEqual(1);
    expect(first.received, first.output).toBe(1);
    const ba = await ping(hosts.b, TUN_A, { count: 5 });
    expect(ba.received, ba.output).toBe(5);
    const ab = await ping(hosts.a, TUN_B, { count: 5 });
    expect(ab.received, ab.output).toBe(5);
    console.log(`wireguard-go under load: ${status.cookieRepliesSent} cookie replies, drops ${JSON.stringify(status.handshakeDrops)}`);
  }, 30_000);

  it("follows weft's key rotation once wireguard-go has the new PublicKey (as flanneld sets it from the lease)", async () => {
    const old = weftKeys.publicKey.toString("base64");
    weftKeys = generateStaticKeys();
    engine.setWireguardPrivateKey(weftKeys.privateKey);
    expect(engine.wireguardStatus()?.publicKey).toBe(weftKeys.publicKey.toString("base64"));
    await go!.wg(["set", go!.device, "peer", old, "remove",
      "peer", weftKeys.publicKey.toString("base64"), "endpoint", `${UNDERLAY_A}:${PORT}`, "allowed-ips", SUBNET_A.toString()]);
    const before = engine.wireguardStatus()!.handshakesCompleted;
    // weft initiates to its peers a second after a rotation (until then it sends on the old
    // session, which wireguard-go dropped with the old peer); under load wireguard-go's response
    // costs a cookie round and a retry (5 s).
    await waitUntil("a ping over a session of the new key", async () => (await ping(hosts.a, TUN_B, { count: 1 })).received === 1, { timeoutMs: 20_000, intervalMs: 200 });
    const again = await ping(hosts.b, TUN_A, { count: 5 });
    expect(again.received, again.output).toBe(5);
    expect(engine.wireguardStatus()!.handshakesCompleted).toBeGreaterThan(before);
    const shown = await go!.wg(["show", go!.device, "latest-handshakes"]);
    expect(shown).toContain(weftKeys.publicKey.toString("base64"));
    expect(shown).not.toContain(old);
  }, 40_000);

  it("measures the loss toward wireguard-go when only weft sends across its key rotation (not under load)", async () => {
    engine.close();
    const goPublicKey = (await go!.wg(["show", go!.device, "public-key"])).trim();
    engine = openEngine({ mode: "wireguard", tunName: "wt0", mtu: MTU, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A, port: PORT, wireguard: { privateKey: weftKeys.privateKey } });
    await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
    engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: goPublicKey, port: PORT });
    await waitUntil("weft and wireguard-go handshaken", async () => (await ping(hosts.a, TUN_B, { count: 1 })).received === 1, { timeoutMs: 20_000, intervalMs: 200 });
    const stream = startPingStream(hosts.a, TUN_B, 10);
    await waitUntil("the ping stream running", async () => stream.received() >= 100, { timeoutMs: 10_000, intervalMs: 100 });
    const old = weftKeys.publicKey.toString("base64");
    weftKeys = generateStaticKeys();
    engine.setWireguardPrivateKey(weftKeys.privateKey);
    await sleep(100); // the lease write and flanneld's reaction to it
    await go!.wg(["set", go!.device, "peer", old, "remove",
      "peer", weftKeys.publicKey.toString("base64"), "endpoint", `${UNDERLAY_A}:${PORT}`, "allowed-ips", SUBNET_A.toString()]);
    await sleep(3000);
    const result = await stream.stop();
    console.log(`weft rotates, wireguard-go only answers: ${result.sent} sent, ${result.lost} lost, longest gap ${result.longestGapMs} ms`);
    // Until weft's handshake a second after the rotation, its echoes go out on the old session.
    expect(result.lost).toBeLessThanOrEqual(150);
    expect(result.longestGapMs).toBeLessThan(1500);
  }, 40_000);
});
