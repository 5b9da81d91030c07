/**
 * Handshake admission in C (native/README.md "WireGuard"), with real engines under a flood from
 * a stranger. Topology: two-hosts.ts, both engines in this process (default DoS defence, default
 * REKEY_TIMEOUT of 5 s); the flooder is its own process on B's second address:
 *
 *     <p>a: engine A (flooded)                        <p>b: engine B (a weft peer of A)
 *       ul0 192.168.90.1:51820  <---- veth ---->    ul0 192.168.90.2:51820
 *                                                       192.168.90.3:40124 flooder (udp-flood.ts)
 *
 * The flood mixes initiations with a valid mac1 (anyone who knows A's public key can make them),
 * initiations with a wrong one (garbage) and garbage cookie replies, about 7000 a second in all:
 * more than A's JavaScript side answers. Before admission, A's 256-event queue filled, B's
 * initiation was dropped there or answered with a cookie (A under load) and B got its session
 * only with its retry, REKEY_TIMEOUT later. Now the outside thread drops the garbage on its mac1
 * and holds the stranger to its token bucket while the queue is loaded: B's first initiation
 * (and, the other way round, B's response to A's) completes at once.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineCounters } from "../../../src/engine/counters.js";
import type { Engine } from "../../../src/engine/engine.js";
import type { SessionLogger } from "../../../src/engine/wireguard/sessions.js";
import { loadNativeAddon } from "../../../src/engine/native-addon.js";
import { COOKIE_REPLY_LEN, INITIATION_LEN, generateStaticKeys, mac1Key } from "../../../src/engine/wireguard/noise.js";
import { STRANGER, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B, createTwoHosts, ping, type TwoHosts } from "../two-hosts.js";
import { WIREGUARD_PORT as PORT, openWireguardPair } from "./engine-pair.js";
import { floodUdp } from "./udp-flood.js";

const FLOODER_PORT = 40124;
const FLOOD_PER_SECOND = 7200;
const FLOOD_MS = 12_000;
/** The C limiter's rate and burst (wireguard.h WG_LIMIT_PER_SECOND, WG_LIMIT_BURST). */
const LIMIT_PER_SECOND = 20;
const LIMIT_BURST = 5;
/** A handshake that needed no retry: well under REKEY_TIMEOUT (5 s). */
const PROMPT_MS = 2500;

const keysA = generateStaticKeys();
const keysB = generateStaticKeys();
const mac = (key: Buffer, data: Buffer, outLen: number) => loadNativeAddon().blake2sMac(key, data, outLen);

/** An initiation to A that only its mac1 makes look right (no mac2). */
function validMac1Initiation(): Buffer {
  const message = randomBytes(INITIATION_LEN);
  message.writeUInt32LE(1, 0);
  mac(mac1Key(keysA.publicKey), message.subarray(0, 116), 16).copy(message, 116);
  message.fill(0, 132);
  return message;
}

/** Type and size right, everything else random: its mac1 is nobody's. */
function garbage(type: number, length: number): Buffer {
  const message = randomBytes(length);
  message.writeUInt32LE(type, 0);
  return message;
}

/** Rounds of 4 valid-mac1 initiations, 4 garbage initiations and a garbage cookie reply. */
const ROUND = { valid: 4, garbage: 4, cookie: 1 };
const templates = Array.from({ length: 32 }, () => [
  ...Array.from({ length: ROUND.valid }, validMac1Initiation),
  ...Array.from({ length: ROUND.garbage }, () => garbage(1, INITIATION_LEN)),
  garbage(3, COOKIE_REPLY_LEN),
]).flat();
const kindOf = (template: Buffer) =>
  template.readUInt32LE(0) === 3 ? "cookie" : template.subarray(132).equals(Buffer.alloc(16)) ? "valid" : "garbage";

/** Every initiation B sends, and whether it was the timer's retry. */
const initiationsByB: boolean[] = [];
const loggerB: SessionLogger = {
  debug: (object, message) => {
    if (message === "wireguard: handshake initiation") initiationsByB.push((object as { retry?: boolean }).retry === true);
  },
  info: () => {},
  warn: () => {},
};

let hosts: TwoHosts;
let engineA: Engine;
let engineB: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  ({ engineA, engineB } = await openWireguardPair(hosts, { a: keysA, b: keysB }, { b: { logger: loggerB } }));
});

afterAll(async () => {
  engineA?.close();
  engineB?.close();
  await hosts?.destroy();
});

const drop = (counters: EngineCounters, reason: string) => counters.outside.drops[reason] ?? 0;
const handshaken = (engine: Engine) => engine.wireguardStatus()?.peers[0]?.handshakes ?? 0;

/** Starts a handshake by pinging (data for a peer without a session) and times it to the first completed one. */
async function timeHandshake(from: string, to: string, initiator: Engine): Promise<{ ms: number; received: number }> {
  const start = performance.now();
  const pinged = ping(from, to, { count: 1, timeoutSeconds: 8 });
  await expect.poll(() => handshaken(initiator), { timeout: 8000, interval: 20 }).toBeGreaterThanOrEqual(1);
  const ms = performance.now() - start;
  return { ms, received: (await pinged).received };
}

describe("wireguard handshake admission under a stranger's flood", () => {
  it("drops garbage on its mac1 and holds the stranger to its bucket; the real peer's handshakes need no retry", async () => {
    const before = engineA.counters();
    const jsBadMac1Before = engineA.wireguardStatus()!.handshakeDrops.bad_mac1 ?? 0;
    const flood = floodUdp({
      namespace: hosts.b, from: STRANGER, fromPort: FLOODER_PORT, to: UNDERLAY_A, toPort: PORT,
      templates, perSecond: FLOOD_PER_SECOND, durationMs: FLOOD_MS,
    });
    // Steady state: the outside thread limits the stranger, and JavaScript (which saw only what
    // came before that) is not under load any more.
    await expect
      .poll(() => drop(engineA.counters(), "handshake_rate_limited") > drop(before, "handshake_rate_limited") + 1000 && !engineA.wireguardStatus()!.underLoad, {
        timeout: 6000,
        interval: 50,
      })
      .toBe(true);
    const queueFullAtSteadyState = drop(engineA.counters(), "handshake_queue_full");

    // B initiates (A responds): one initiation, answered at once.
    const bToA = await timeHandshake(hosts.b, TUN_A, engineB);
    expect(initiationsByB.filter((retry) => retry)).toEqual([]);
    expect(bToA.ms).toBeLessThan(PROMPT_MS);
    expect(bToA.received).toBe(1);

    // A initiates (its new peer state for B has no session): B's response must get through A's admission.
    engineA.removePeer(SUBNET_B);
    engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: keysB.publicKey.toString("base64"), port: PORT });
    const aToB = await timeHandshake(hosts.a, TUN_B, engineA);
    expect(aToB.ms).toBeLessThan(PROMPT_MS);
    expect(aToB.received).toBe(1);
    const stillFlooding = performance.now();

    const result = await flood;
    expect(stillFlooding, "the handshakes completed during the flood").toBeLessThan(performance.now() - 300);
    const after = engineA.counters();
    const status = engineA.wireguardStatus()!;
    const sent = { valid: 0, garbage: 0, cookie: 0 };
    templates.forEach((template, i) => (sent[kindOf(template)] += result.sentPerTemplate[i] ?? 0));
    const delta = (reason: string) => drop(after, reason) - drop(before, reason);
    const handedUp = (after.outside.detail.handshake_messages ?? 0) - (before.outside.detail.handshake_messages ?? 0);
    const seconds = result.elapsedMs / 1000;

    // Every garbage initiation (and nothing else) failed mac1 in C; JavaScript saw none of them.
    expect(delta("handshake_bad_mac1")).toBeGreaterThanOrEqual(sent.garbage * 0.95);
    expect(delta("handshake_bad_mac1")).toBeLessThanOrEqual(sent.garbage);
    expect((status.handshakeDrops.bad_mac1 ?? 0) - jsBadMac1Before).toBe(delta("handshake_bad_mac1"));
    // The stranger's valid-looking messages: all but its bucket's share (and what came before
    // the queue was loaded) were dropped in C; the queue never overflowed once the limiter held.
    const strangers = sent.valid + sent.cookie;
    expect(delta("handshake_rate_limited")).toBeGreaterThanOrEqual(strangers * 0.9);
    expect(delta("handshake_rate_limited") + handedUp).toBeLessThanOrEqual(strangers + 10);
    // What got through is the bucket's share (and the first messages, before the queue was loaded).
    expect(handedUp).toBeGreaterThanOrEqual(LIMIT_PER_SECOND * seconds * 0.8);
    expect(handedUp).toBeLessThanOrEqual(LIMIT_BURST + LIMIT_PER_SECOND * seconds + 400);
    expect(drop(after, "handshake_queue_full")).toBe(queueFullAtSteadyState);
    console.log(
      `admission: flood ${result.sent} in ${seconds.toFixed(1)} s (valid ${sent.valid}, garbage ${sent.garbage}, cookie ${sent.cookie}); ` +
        `C dropped bad_mac1 ${delta("handshake_bad_mac1")}, rate_limited ${delta("handshake_rate_limited")}, queue_full ${delta("handshake_queue_full")}; ` +
        `handed up ${handedUp}; B->A handshake ${bToA.ms.toFixed(0)} ms, A->B ${aToB.ms.toFixed(0)} ms; JS drops ${JSON.stringify(status.handshakeDrops)}`,
    );
  }, 60_000);
});
