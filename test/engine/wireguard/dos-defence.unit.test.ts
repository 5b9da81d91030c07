import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { COOKIE_SECRET_LIFETIME_MS, CookieResponder } from "../../../src/engine/wireguard/cookie.js";
import { HandshakeLoad } from "../../../src/engine/wireguard/handshake-load.js";
import {
  COOKIE_REPLY_LEN,
  consumeCookieReply,
  createInitiation,
  generateStaticKeys,
  hasMac2,
  mac1Of,
  tai64n,
  validMac1,
  type KeyedBlake2s,
} from "../../../src/engine/wireguard/noise.js";
import { SourceRateLimiter } from "../../../src/engine/wireguard/rate-limiter.js";
import {
  DEFAULT_WIREGUARD_TIMERS,
  WireguardSessions,
  type EngineEvent,
  type SessionDataPath,
} from "../../../src/engine/wireguard/sessions.js";

/**
 * The responder's DoS defence (whitepaper §5.3) piece by piece, then two WireguardSessions
 * talking through a fake data path (the engine's session table is the seam): under load the
 * responder answers with a cookie and the initiator's retry, carrying mac2, gets through.
 */

// No native addon in the unit tier: a deterministic stand-in for BLAKE2SMAC (see noise.unit.test.ts).
const standInMac: KeyedBlake2s = (key, data, outLen) => createHmac("sha256", key).update(data).digest().subarray(0, outLen);

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

const responder = generateStaticKeys();
const initiator = generateStaticKeys();
const FROM = { ip: 0xc0a85a03, port: 40000 };

function initiation(cookie?: Buffer, index = 7) {
  return createInitiation({
    local: initiator, remotePublic: responder.publicKey, presharedKey: undefined, localIndex: index,
    timestamp: tai64n(BigInt(Date.now()) * 1_000_000n), cookie, mac: standInMac,
  });
}

describe("cookie replies and mac2 (CookieResponder)", () => {
  it("a reply our own consumeCookieReply accepts, whose cookie makes a mac2 that validates", () => {
    const c = clock();
    const cookies = new CookieResponder(responder.publicKey, standInMac, c.now);
    const first = initiation();
    expect(hasMac2(first.message)).toBe(false);
    expect(cookies.validMac2(first.message, FROM)).toBe(false);
    const reply = cookies.reply(first.message, FROM);
    expect(reply).toHaveLength(COOKIE_REPLY_LEN);
    expect(reply.readUInt32LE(0)).toBe(3);
    expect(reply.readUInt32LE(4)).toBe(7); // the initiation's sender index
    const cookie = consumeCookieReply(reply, responder.publicKey, first.state.mac1);
    expect(cookie).toHaveLength(16);
    // Only the sender of that message (its mac1) can open it, and only with our public key.
    expect(consumeCookieReply(reply, responder.publicKey, randomBytes(16))).toBeUndefined();
    expect(consumeCookieReply(reply, generateStaticKeys().publicKey, first.state.mac1)).toBeUndefined();
    const retry = initiation(cookie, 8);
    expect(hasMac2(retry.message)).toBe(true);
    expect(validMac1(retry.message, responder.publicKey, standInMac)).toBe(true);
    expect(cookies.validMac2(retry.message, FROM)).toBe(true);
    // Two replies to one message differ (random nonce) but carry the same cookie.
    const again = cookies.reply(first.message, FROM);
    expect(again.equals(reply)).toBe(false);
    expect(consumeCookieReply(again, responder.publicKey, mac1Of(first.message))?.equals(cookie!)).toBe(true);
  });

  it("mac2 is bound to the source address and port", () => {
    const cookies = new CookieResponder(responder.publicKey, standInMac, clock().now);
    const first = initiation();
    const cookie = consumeCookieReply(cookies.reply(first.message, FROM), responder.publicKey, first.state.mac1)!;
    const retry = initiation(cookie, 9);
    expect(cookies.validMac2(retry.message, FROM)).toBe(true);
    expect(cookies.validMac2(retry.message, { ip: FROM.ip + 1, port: FROM.port })).toBe(false);
    expect(cookies.validMac2(retry.message, { ip: FROM.ip, port: FROM.port + 1 })).toBe(false);
    const tampered = Buffer.from(retry.message);
    tampered[148 - 1]! ^= 1;
    expect(cookies.validMac2(tampered, FROM)).toBe(false);
  });

  it("the secret changes every two minutes: older cookies stop validating, a new reply gives a new cookie", () => {
    const c = clock();
    const cookies = new CookieResponder(responder.publicKey, standInMac, c.now);
    const first = initiation();
    const oldCookie = consumeCookieReply(cookies.reply(first.message, FROM), responder.publicKey, first.state.mac1)!;
    c.t += COOKIE_SECRET_LIFETIME_MS - 1;
    expect(cookies.validMac2(initiation(oldCookie, 10).message, FROM)).toBe(true);
    c.t += 1;
    expect(cookies.validMac2(initiation(oldCookie, 11).message, FROM)).toBe(false);
    const newCookie = consumeCookieReply(cookies.reply(first.message, FROM), responder.publicKey, first.state.mac1)!;
    expect(newCookie.equals(oldCookie)).toBe(false);
    expect(cookies.validMac2(initiation(newCookie, 12).message, FROM)).toBe(true);
    expect(cookies.validMac2(initiation(oldCookie, 13).message, FROM)).toBe(false);
  });

  it("seals replies under a rotated public key", () => {
    const cookies = new CookieResponder(responder.publicKey, standInMac, clock().now);
    const rotated = generateStaticKeys();
    cookies.setPublicKey(rotated.publicKey);
    const first = initiation();
    const reply = cookies.reply(first.message, FROM);
    expect(consumeCookieReply(reply, rotated.publicKey, first.state.mac1)).toHaveLength(16);
    expect(consumeCookieReply(reply, responder.publicKey, first.state.mac1)).toBeUndefined();
  });
});

describe("per-source token buckets (SourceRateLimiter)", () => {
  it("lets a burst of 5 through, then 20 per second, per address", () => {
    const c = clock();
    const limiter = new SourceRateLimiter({ perSecond: 20, burst: 5, maxSources: 100 }, c.now);
    const results = Array.from({ length: 7 }, () => limiter.allow(1));
    expect(results).toEqual([true, true, true, true, true, false, false]);
    expect(limiter.allow(2)).toBe(true); // another address has its own bucket
    c.t += 49;
    expect(limiter.allow(1)).toBe(false);
    c.t += 1; // 50 ms: one token
    expect(limiter.allow(1)).toBe(true);
    expect(limiter.allow(1)).toBe(false);
    // Over a second at a steady 100/s, about 20 pass.
    let passed = 0;
    for (let i = 0; i < 100; i++) {
      c.t += 10;
      if (limiter.allow(1)) passed++;
    }
    expect(passed).toBeGreaterThanOrEqual(19);
    expect(passed).toBeLessThanOrEqual(21);
  });

  it("expires idle buckets and tracks at most maxSources addresses", () => {
    const c = clock();
    const limiter = new SourceRateLimiter({ perSecond: 20, burst: 5, maxSources: 3 }, c.now);
    expect([1, 2, 3].map((ip) => limiter.allow(ip))).toEqual([true, true, true]);
    expect(limiter.allow(4)).toBe(false); // full: a new address is refused, not tracked
    expect(limiter.trackedSources).toBe(3);
    expect(limiter.allow(1)).toBe(true); // known ones go on
    c.t += 999;
    limiter.sweep();
    expect(limiter.trackedSources).toBe(3);
    c.t += 1;
    expect(limiter.allow(1)).toBe(true);
    limiter.sweep(); // 2 and 3 have been idle a second: full again, forgotten
    expect(limiter.trackedSources).toBe(1);
    expect(limiter.allow(4)).toBe(true);
    // A full table sweeps by itself when a new address comes.
    limiter.allow(5);
    expect(limiter.allow(6)).toBe(false);
    c.t += 1000;
    expect(limiter.allow(6)).toBe(true);
    expect(limiter.trackedSources).toBe(1);
  });

  it("refuses nonsensical limits, naming them", () => {
    expect(() => new SourceRateLimiter({ perSecond: 0, burst: 5, maxSources: 1 }, Date.now)).toThrow(/perSecond > 0/);
  });
});

describe("under load (HandshakeLoad)", () => {
  it("is under load past the rate within a second, and for a second after", () => {
    const c = clock();
    const load = new HandshakeLoad(3, c.now);
    for (let i = 0; i < 3; i++) load.record();
    expect(load.underLoad).toBe(false);
    load.record();
    expect(load.underLoad).toBe(true);
    c.t += 999;
    expect(load.underLoad).toBe(true);
    c.t += 1;
    expect(load.underLoad).toBe(false);
    // Spread out, the same number never is.
    for (let i = 0; i < 10; i++) {
      c.t += 400;
      load.record();
    }
    expect(load.underLoad).toBe(false);
  });
});

/** A fake of the engine's session table: records what the sessions install and send. */
function fakePath() {
  const sent: { ip: number | Buffer; port: number; message: Buffer }[] = [];
  const keypairs: { id: number; initiator: boolean }[] = [];
  const path: SessionDataPath = {
    setPeer: () => undefined,
    removePeer: () => true,
    setKeypair: (id, _li, _ri, _s, _r, isInitiator) => void keypairs.push({ id, initiator: isInitiator }),
    clearKeypairs: () => true,
    stats: () => null,
    send: (ip, port, message) => void sent.push({ ip, port, message: Buffer.from(message) }),
    sendKeepalive: () => true,
    mac: standInMac,
  };
  return { path, sent, keypairs };
}

describe("two WireguardSessions, the responder under load", () => {
  const A = { ip: 0x0a000001, port: 51820 };
  const B = { ip: 0x0a000002, port: 51820 };
  const timers = { ...DEFAULT_WIREGUARD_TIMERS, rekeyTimeoutMs: 1000 };

  function pair(underLoadMessagesPerSecond: number) {
    const c = clock();
    const a = fakePath();
    const b = fakePath();
    const defence = { underLoadMessagesPerSecond, rateLimits: { perSecond: 20, burst: 5, maxSources: 16 } };
    const sa = new WireguardSessions(a.path, { local: initiator, presharedKey: undefined, timers, persistentKeepaliveMs: 0, logger: undefined, defence }, c.now);
    const sb = new WireguardSessions(b.path, { local: responder, presharedKey: undefined, timers, persistentKeepaliveMs: 0, logger: undefined, defence }, c.now);
    const peerOfA = sa.upsertPeer(responder.publicKey, B);
    sb.upsertPeer(initiator.publicKey, A);
    /** Delivers what `from` sent (since `since`) to `to`, as the engine would. */
    const deliver = (fromPath: ReturnType<typeof fakePath>, fromAddress: typeof A, to: WireguardSessions, since: number) => {
      for (const { message } of fromPath.sent.slice(since)) {
        const event: EngineEvent = { kind: "message", address: fromAddress.ip, port: fromAddress.port, data: message };
        to.handle(event);
      }
      return fromPath.sent.length;
    };
    return { c, a, b, sa, sb, peerOfA, deliver };
  }

  it("answers an initiation without mac2 with a cookie; the retry with mac2 completes the handshake", () => {
    const { c, a, b, sa, sb, peerOfA, deliver } = pair(0); // 0: any message puts it under load
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, 0);
    expect(sb.underLoad).toBe(true);
    expect(sb.drops.cookie_sent).toBe(1);
    expect(sb.cookieRepliesSent).toBe(1);
    expect(b.keypairs).toEqual([]);
    expect(b.sent).toHaveLength(1);
    expect(b.sent[0]!.message.readUInt32LE(0)).toBe(3);
    expect(b.sent[0]!.ip).toBe(A.ip);
    deliver(b, B, sa, 0); // A takes the cookie, and does not resend at once
    expect(sa.drops.undecryptable + sa.drops.unknown_index).toBe(0);
    expect(a.sent).toHaveLength(1);
    c.t += 1400; // the retry timer (REKEY_TIMEOUT + jitter)
    sa.tick();
    expect(a.sent).toHaveLength(2);
    expect(hasMac2(a.sent[1]!.message)).toBe(true);
    deliver(a, A, sb, 1);
    expect(b.keypairs).toEqual([{ id: 1, initiator: false }]);
    expect(sb.handshakesCompleted).toBe(1);
    // The response goes out; A, under load too (threshold 0), cookies it: B's retry is A's job.
    deliver(b, B, sa, 1);
    expect(sa.drops.cookie_sent).toBe(1);
  });

  /** Runs the cookie exchange; returns A's retry, which carries a mac2 made with the cookie of A's address. */
  function retryWithCookie(setup: ReturnType<typeof pair>): Buffer {
    const { c, a, b, sa, sb, peerOfA, deliver } = setup;
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, 0);
    deliver(b, B, sa, 0);
    c.t += 1400;
    sa.tick();
    const retry = a.sent[1]!.message;
    expect(hasMac2(retry)).toBe(true);
    return retry;
  }

  it("a mac2 made for another address is answered with a fresh cookie, not processed", () => {
    const setup = pair(0);
    const retry = retryWithCookie(setup);
    const other = { ip: A.ip, port: A.port + 1 };
    setup.sb.handle({ kind: "message", address: other.ip, port: other.port, data: retry });
    expect(setup.sb.drops.mac2_invalid).toBe(1);
    expect(setup.b.keypairs).toEqual([]);
    const reply = setup.b.sent.at(-1)!;
    expect(reply.message.readUInt32LE(0)).toBe(3);
    expect(reply.port).toBe(other.port);
    expect(setup.sb.cookieRepliesSent).toBe(2);
  });

  it("rate-limits a source with a valid cookie past its burst of 5", () => {
    const setup = pair(0);
    const retry = retryWithCookie(setup);
    for (let i = 0; i < 6; i++) setup.sb.handle({ kind: "message", address: A.ip, port: A.port, data: retry });
    expect(setup.sb.handshakesCompleted).toBe(1);
    // Past the limiter: the first is answered, the next four are replays of it (same timestamp).
    expect(setup.sb.drops.replayed_timestamp + setup.sb.drops.flood).toBe(4);
    expect(setup.sb.drops.rate_limited).toBe(1);
  });

  it("not under load, a message without mac2 is processed as usual", () => {
    const { a, b, sa, sb, peerOfA, deliver } = pair(1000);
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, 0);
    expect(sb.underLoad).toBe(false);
    expect(b.keypairs).toEqual([{ id: 1, initiator: false }]);
    deliver(b, B, sa, 0);
    expect(a.keypairs).toEqual([{ id: 1, initiator: true }]);
    expect(sb.cookieRepliesSent + sa.cookieRepliesSent).toBe(0);
  });

  it("after a key rotation, handshakes use the new key and a cookie reply is sealed under it", () => {
    const { c, a, b, sa, sb, peerOfA, deliver } = pair(1000);
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, 0);
    deliver(b, B, sa, 0);
    expect(sb.handshakesCompleted).toBe(1);
    const rotated = generateStaticKeys();
    sb.setStaticKeys(rotated);
    expect(sb.publicKey.equals(rotated.publicKey)).toBe(true);
    // An initiation to the old key (A has not read B's new lease yet) is not for B any more.
    c.t += 6000;
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, a.sent.length - 1);
    expect(sb.drops.bad_mac1).toBe(1);
    // A reads the new lease (the engine replaces the peer): the handshake with the new key completes.
    sa.removePeer(responder.publicKey);
    const peerOfBNew = sa.upsertPeer(rotated.publicKey, B);
    sa.handle({ kind: "want", peer: peerOfBNew });
    deliver(a, A, sb, a.sent.length - 1);
    expect(sb.handshakesCompleted).toBe(2);
    deliver(b, B, sa, b.sent.length - 1);
    expect(a.keypairs.at(-1)).toEqual({ id: peerOfBNew, initiator: true });
    // One second after the rotation B itself initiates to peers it had sessions with (here: A's
    // handshake came first, so nothing is due).
    const sentBefore = b.sent.length;
    c.t += 1000;
    sb.tick();
    expect(b.sent.length).toBe(sentBefore);
  });

  it("after a key rotation the peers with sessions get an initiation with the new key a second later", () => {
    const { c, a, b, sa, sb, peerOfA, deliver } = pair(1000);
    sa.handle({ kind: "want", peer: peerOfA });
    deliver(a, A, sb, 0);
    deliver(b, B, sa, 0);
    const rotated = generateStaticKeys();
    sb.setStaticKeys(rotated);
    const sentBefore = b.sent.length;
    c.t += 999;
    sb.tick();
    expect(b.sent.length).toBe(sentBefore);
    c.t += 1;
    sb.tick();
    expect(b.sent.length).toBe(sentBefore + 1);
    const initiation = b.sent.at(-1)!.message;
    expect(initiation.readUInt32LE(0)).toBe(1);
    // A, once it knows the new key, accepts it as from B's new key.
    sa.removePeer(responder.publicKey);
    sa.upsertPeer(rotated.publicKey, B);
    deliver(b, B, sa, sentBefore);
    expect(sa.handshakesCompleted).toBe(2);
    expect(sa.drops.unknown_peer).toBe(0);
  });
});
