/**
 * The responder's DoS defence with real engines (whitepaper §5.3). Topology: two-hosts.ts, both
 * engines in this process; the flooder is a plain UDP socket on B's second address:
 *
 *     <p>a: engine A (under-load threshold 20/s)      <p>b: engine B (a weft peer of A)
 *       ul0 192.168.90.1:51820  <---- veth ---->    ul0 192.168.90.2:51820
 *                                                       192.168.90.3:40123 flooder (node dgram)
 *
 * The flooder sends initiations with a valid mac1 (it only needs A's public key) and garbage
 * elsewhere, faster than the threshold: A answers with cookie replies, to the flooder's address,
 * and spends no Curve25519 on them. Meanwhile B, a real peer, handshakes with A: its first
 * initiation gets a cookie too, its retry carries mac2 and completes; pings pass. Then the
 * flooder uses its cookie: its messages pass the cookie gate (and fail to decrypt, being
 * garbage) until its per-source bucket runs dry.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../../../src/engine/engine.js";
import { loadNativeAddon } from "../../../src/engine/native-addon.js";
import {
  COOKIE_REPLY_LEN,
  INITIATION_LEN,
  consumeCookieReply,
  generateStaticKeys,
  mac1Key,
  mac1Of,
} from "../../../src/engine/wireguard/noise.js";
import { sleep } from "../../../src/async/sleep.js";
import { STRANGER, TUN_A, UNDERLAY_A, createTwoHosts, ping, type TwoHosts } from "../two-hosts.js";
import { WIREGUARD_PORT as PORT, openWireguardPair } from "./engine-pair.js";
import { exchangeUdp } from "./udp-exchange.js";

const FLOODER_PORT = 40123;
const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
const mac = (key: Buffer, data: Buffer, outLen: number) => loadNativeAddon().blake2sMac(key, data, outLen);

/** An initiation to A that only mac1 makes look right; with `cookie`, mac2 too. */
function floodInitiation(senderIndex: number, cookie?: Buffer): Buffer {
  const message = randomBytes(INITIATION_LEN);
  message.writeUInt32LE(1, 0);
  message.writeUInt32LE(senderIndex, 4);
  mac(mac1Key(keysA.publicKey), message.subarray(0, 116), 16).copy(message, 116);
  if (cookie) mac(cookie, message.subarray(0, 132), 16).copy(message, 132);
  else message.fill(0, 132);
  return message;
}

let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  // B retries a handshake after 1 s instead of 5 s: the test need not wait out REKEY_TIMEOUT.
  ({ engineA, engineB } = await openWireguardPair(hosts, { a: keysA, b: keysB }, {
    a: { defence: { underLoadMessagesPerSecond: 20, rateLimits: { perSecond: 20, burst: 5, maxSources: 64 } } },
    b: { timers: { rekeyTimeoutMs: 1000 } },
  }));
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

describe("wireguard engine under a handshake flood", () => {
  let cookie: Buffer | undefined;

  it("answers a flood with cookie replies while a real peer still handshakes (with mac2) and pings", async () => {
    // 8 s at 100 initiations per second, five times the threshold.
    const flood = Array.from({ length: 800 }, (_, i) => floodInitiation(1000 + i));
    const exchange = exchangeUdp({
      namespace: hosts.b, from: STRANGER, fromPort: FLOODER_PORT, to: UNDERLAY_A, toPort: PORT,
      datagrams: flood, intervalMs: 10, listenMs: 500,
    });
    await expect.poll(() => engineA.wireguardStatus()?.underLoad, { timeout: 10_000 }).toBe(true);
    // B's first initiation is cookied; its retry (1 s later) carries mac2; the echo requests wait staged.
    const pinged = await ping(hosts.b, TUN_A, { count: 4, timeoutSeconds: 4 });
    const statusDuringFlood = engineA.wireguardStatus()!;
    const again = await ping(hosts.b, TUN_A, { count: 3 });
    const stillUnderLoad = engineA.wireguardStatus()!.underLoad;
    const replies = await exchange;

    expect(pinged.received, pinged.output).toBeGreaterThanOrEqual(1);
    expect(again.received, again.output).toBe(3);
    expect(statusDuringFlood.peers[0]?.handshakes).toBeGreaterThanOrEqual(1);
    expect(stillUnderLoad).toBe(true); // the handshake completed under load, not after the flood

    // Cookie replies came back to the flooder's address, one per initiation A saw under load.
    expect(replies.length).toBeGreaterThan(flood.length * 0.6);
    const sentByIndex = new Map(flood.map((message) => [message.readUInt32LE(4), message]));
    for (const reply of replies) {
      expect(reply).toHaveLength(COOKIE_REPLY_LEN);
      expect(reply.readUInt32LE(0)).toBe(3);
      const original = sentByIndex.get(reply.readUInt32LE(4));
      expect(original).toBeDefined();
      const opened = consumeCookieReply(reply, keysA.publicKey, mac1Of(original!));
      expect(opened).toHaveLength(16);
      if (cookie) expect(opened!.equals(cookie)).toBe(true); // one cookie per source address while the secret lasts
      cookie = opened;
    }
    const status = engineA.wireguardStatus()!;
    // The flood and B's first initiation: cookied, not decrypted.
    expect(status.cookieRepliesSent).toBeGreaterThanOrEqual(replies.length + 1);
    expect(status.handshakeDrops.cookie_sent).toBe(status.cookieRepliesSent);
    // Only what came before A noticed the load (20 in the first second) cost it a decryption.
    expect(status.handshakeDrops.undecryptable).toBeLessThanOrEqual(40);
    console.log(`under load: ${flood.length} flood initiations, ${replies.length} cookie replies received, A's drops ${JSON.stringify(status.handshakeDrops)}; B's pings ${pinged.received}/4 then ${again.received}/3`);
  }, 60_000);

  it("lets a flooder's cookie-carrying messages through the cookie gate, then rate-limits its address", async () => {
    if (!cookie) throw new Error("the first test got no cookie");
    const before = engineA.wireguardStatus()!;
    // 50 in 250 ms: A goes (or stays) under load by itself; each carries a valid mac2.
    const replies = await exchangeUdp({
      namespace: hosts.b, from: STRANGER, fromPort: FLOODER_PORT, to: UNDERLAY_A, toPort: PORT,
      datagrams: Array.from({ length: 50 }, (_, i) => floodInitiation(5000 + i, cookie)), intervalMs: 5, listenMs: 300,
    });
    await sleep(200);
    const after = engineA.wireguardStatus()!;
    const delta = (reason: string) => (after.handshakeDrops[reason] ?? 0) - (before.handshakeDrops[reason] ?? 0);
    expect(replies).toEqual([]); // no cookie for a message with a valid mac2
    expect(delta("cookie_sent") + delta("mac2_invalid")).toBe(0);
    expect(delta("rate_limited")).toBeGreaterThan(0);
    // Every message is accounted for: processed (undecryptable garbage) or rate-limited.
    expect(delta("undecryptable") + delta("rate_limited")).toBe(50);
    console.log(`with a cookie: 50 initiations -> ${delta("undecryptable")} decrypted (garbage), ${delta("rate_limited")} rate-limited`);
  });
});
