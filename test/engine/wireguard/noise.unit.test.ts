import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  consumeCookieReply,
  consumeInitiation,
  consumeResponse,
  cookieKey,
  createInitiation,
  createResponse,
  generateStaticKeys,
  hchacha20,
  publicKeyOf,
  tai64n,
  validMac1,
  xaeadOpen,
  xaeadSeal,
  type KeyedBlake2s,
} from "../../../src/engine/wireguard/noise.js";

// The unit tier has no native addon, so no BLAKE2SMAC: this stand-in keyed hash only has to be
// deterministic for the two sides to agree. The real MAC is what the wireguard-go interop test
// (test/backend/wireguard/) exercises.
const standInMac: KeyedBlake2s = (key, data, outLen) => createHmac("sha256", key).update(data).digest().subarray(0, outLen);

describe("noise primitives", () => {
  it("HChaCha20 from OpenSSL's ChaCha20 matches draft-irtf-cfrg-xchacha §2.2.1", () => {
    const key = Buffer.from([...Array(32).keys()]);
    const nonce = Buffer.from("000000090000004a0000000031415927", "hex");
    expect(hchacha20(key, nonce).toString("hex")).toBe(
      "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc",
    );
  });

  it("XChaCha20-Poly1305 round-trips and rejects a wrong associated data", () => {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const sealed = xaeadSeal(key, nonce, Buffer.from("cookie-of-16-byt"), Buffer.from("aad"));
    expect(xaeadOpen(key, nonce, sealed, Buffer.from("aad"))?.toString()).toBe("cookie-of-16-byt");
    expect(xaeadOpen(key, nonce, sealed, Buffer.from("aaX"))).toBeUndefined();
  });

  it("TAI64N is 2^62 + 10 + seconds, then nanoseconds, big-endian", () => {
    expect(tai64n(1_700_000_000_123_456_789n).toString("hex")).toBe("400000006553f10a075bcd15");
  });

  it("derives the public key of a clamped private key", () => {
    const keys = generateStaticKeys();
    expect(publicKeyOf(keys.privateKey).equals(keys.publicKey)).toBe(true);
    expect(keys.privateKey[0]! & 7).toBe(0);
  });
});

describe("Noise_IKpsk2 handshake", () => {
  const initiator = generateStaticKeys();
  const responder = generateStaticKeys();

  function handshake(psk: { i?: Buffer; r?: Buffer }) {
    const { message, state } = createInitiation({
      local: initiator, remotePublic: responder.publicKey, presharedKey: psk.i, localIndex: 7,
      timestamp: tai64n(1n), cookie: undefined, mac: standInMac,
    });
    expect(validMac1(message, responder.publicKey, standInMac)).toBe(true);
    const consumed = consumeInitiation(message, responder);
    if (!consumed) throw new Error("initiation did not authenticate");
    const response = createResponse({ local: responder, consumed, presharedKey: psk.r, localIndex: 9, cookie: undefined, mac: standInMac });
    expect(validMac1(response.message, initiator.publicKey, standInMac)).toBe(true);
    return { message, consumed, response, initiatorKeys: consumeResponse(response.message, state, initiator, psk.i), state };
  }

  it("gives both sides the same transport keys, crossed, with and without a PSK", () => {
    for (const psk of [undefined, randomBytes(32)]) {
      const { consumed, response, initiatorKeys } = handshake({ i: psk, r: psk });
      expect(consumed.initiatorPublic.equals(initiator.publicKey)).toBe(true);
      expect(consumed.senderIndex).toBe(7);
      expect(response.message.readUInt32LE(8)).toBe(7);
      expect(initiatorKeys?.sendKey.equals(response.keys.recvKey)).toBe(true);
      expect(initiatorKeys?.recvKey.equals(response.keys.sendKey)).toBe(true);
      expect(initiatorKeys?.sendKey.equals(initiatorKeys.recvKey)).toBe(false);
    }
  });

  it("fails when the PSKs differ", () => {
    expect(handshake({ i: randomBytes(32), r: randomBytes(32) }).initiatorKeys).toBeUndefined();
  });

  it("rejects a tampered initiation, a wrong responder and a bad mac1", () => {
    const { message } = handshake({});
    const tampered = Buffer.from(message);
    tampered[60]! ^= 1;
    expect(consumeInitiation(tampered, responder)).toBeUndefined();
    expect(consumeInitiation(message, generateStaticKeys())).toBeUndefined();
    expect(validMac1(tampered, responder.publicKey, standInMac)).toBe(false);
  });

  it("opens a cookie reply sealed to the initiation's mac1", () => {
    const { state } = handshake({});
    const cookie = randomBytes(16);
    const reply = Buffer.alloc(64);
    reply.writeUInt32LE(3, 0);
    reply.writeUInt32LE(7, 4);
    const nonce = randomBytes(24);
    nonce.copy(reply, 8);
    xaeadSeal(cookieKey(responder.publicKey), nonce, cookie, state.mac1).copy(reply, 32);
    expect(consumeCookieReply(reply, responder.publicKey, state.mac1)?.equals(cookie)).toBe(true);
    expect(consumeCookieReply(reply, responder.publicKey, randomBytes(16))).toBeUndefined();
  });
});
