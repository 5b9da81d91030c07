import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CookieResponder } from "../../../src/engine/wireguard/cookie.js";
import {
  COOKIE_REPLY_LEN,
  INITIATION_LEN,
  RESPONSE_LEN,
  consumeCookieReply,
  createInitiation,
  generateStaticKeys,
  tai64n,
  type KeyedBlake2s,
} from "../../../src/engine/wireguard/noise.js";
import { DEFAULT_WIREGUARD_TIMERS, WireguardSessions, type SessionDataPath } from "../../../src/engine/wireguard/sessions.js";
import { seededRandom } from "../../support/seeded-random.js";

/**
 * Handshake messages come from anyone who can reach the port (the engine only checks type and
 * size before handing them up). A seeded random walk of mutants near valid initiations,
 * responses and cookie replies, under load and not: handle() never throws, and every initiation
 * or response ends in exactly one place, a completed handshake or one drop reason.
 */

const standInMac: KeyedBlake2s = (key, data, outLen) => createHmac("sha256", key).update(data).digest().subarray(0, outLen);
const SOURCE = { ip: 0xc0a85a03, port: 40000 };

function responderWith(underLoadMessagesPerSecond: number, keys: ReturnType<typeof generateStaticKeys>, initiatorPublic: Buffer) {
  const path: SessionDataPath = {
    setPeer: () => undefined, removePeer: () => true, setKeypair: () => undefined, clearKeypairs: () => true,
    stats: () => null, send: () => undefined, sendKeepalive: () => true, mac: standInMac,
  };
  let t = 0;
  const sessions = new WireguardSessions(path, {
    local: keys, presharedKey: undefined, timers: DEFAULT_WIREGUARD_TIMERS, persistentKeepaliveMs: 0, logger: undefined,
    defence: { underLoadMessagesPerSecond, rateLimits: { perSecond: 20, burst: 5, maxSources: 8 } },
  }, () => (t += 30)); // 30 ms per look at the clock: past the per-peer 20 ms limit, buckets refill
  sessions.upsertPeer(initiatorPublic, SOURCE);
  return sessions;
}

function mutate(base: Buffer, random: () => number): Buffer {
  const out = Buffer.from(base);
  const edits = 1 + Math.floor(random() * 4);
  for (let i = 0; i < edits; i++) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
  if (random() < 0.2) for (let i = 8; i < out.length; i++) out[i] = Math.floor(random() * 256); // all but the header
  return out;
}

describe("handshake messages under random input", () => {
  const responder = generateStaticKeys();
  const initiator = generateStaticKeys();

  it("WireguardSessions.handle: no throw, every initiation and response counted once, a cookie reply at most once", () => {
    const random = seededRandom(23);
    const cookies = new CookieResponder(responder.publicKey, standInMac, () => 0);
    // Valid initiations to mutate (making one costs three X25519s: a pool keeps the walk fast).
    const pool = Array.from({ length: 24 }, (_, i) => createInitiation({
      local: initiator, remotePublic: responder.publicKey, presharedKey: undefined, localIndex: i + 1,
      timestamp: tai64n(BigInt(i + 1) * 1_000_000_000n), cookie: undefined, mac: standInMac,
    }));
    for (const threshold of [1_000_000, 0]) {
      const sessions = responderWith(threshold, responder, initiator.publicKey);
      const total = () => Object.values(sessions.drops).reduce((a, b) => a + b, 0) + sessions.handshakesCompleted;
      for (let i = 0; i < 1500; i++) {
        const { message, state } = pool[i % pool.length]!;
        const response = Buffer.alloc(RESPONSE_LEN);
        response.writeUInt32LE(2, 0);
        response.writeUInt32LE(i, 8);
        const reply = cookies.reply(message, SOURCE);
        const kind = i % 3;
        const base = kind === 0 ? message : kind === 1 ? response : reply;
        const data = random() < 0.1 ? base : mutate(base, random);
        data.writeUInt8(kind + 1, 0); // keep the type the engine let through
        const before = total();
        expect(() => sessions.handle({ kind: "message", address: SOURCE.ip, port: SOURCE.port, data })).not.toThrow();
        // A cookie reply to nothing we sent is a drop; one that opens is not counted.
        if (kind < 2) expect(total() - before, data.toString("hex")).toBe(1);
        else expect(total() - before).toBeLessThanOrEqual(1);
        expect(data.length).toBe([INITIATION_LEN, RESPONSE_LEN, COOKIE_REPLY_LEN][kind]);
        // A cookie reply only opens with its nonce and sealed cookie untouched (the header is not authenticated).
        if (kind === 2 && !data.subarray(8).equals(reply.subarray(8))) expect(consumeCookieReply(data, responder.publicKey, state.mac1)).toBeUndefined();
      }
      // The untouched initiations: answered, or (always under load) cookied.
      if (threshold === 0) expect(sessions.drops.cookie_sent).toBeGreaterThan(0);
      else expect(sessions.handshakesCompleted).toBeGreaterThan(0);
    }
  });
});
