import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

/**
 * WireGuard's handshake, Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (whitepaper §5.4), message by
 * message: the initiation (type 1), the response (type 2) and the cookie reply (type 3), with
 * mac1/mac2 and TAI64N timestamps. Pure functions over Buffers; the session bookkeeping is
 * sessions.ts'. Every primitive is OpenSSL's: node:crypto for X25519, BLAKE2s-256, HMAC,
 * ChaCha20-Poly1305 and raw ChaCha20; keyed BLAKE2s (the protocol's MAC, which node:crypto
 * does not offer) comes from the engine addon's BLAKE2SMAC and is passed in as `mac`.
 */

export const KEY_LEN = 32;
export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 64;

const CONSTRUCTION = Buffer.from("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s");
const IDENTIFIER = Buffer.from("WireGuard v1 zx2c4 Jason@zx2c4.com");
const LABEL_MAC1 = Buffer.from("mac1----");
const LABEL_COOKIE = Buffer.from("cookie--");
const EMPTY = Buffer.alloc(0);
const ZERO_KEY = Buffer.alloc(KEY_LEN);

/** Keyed BLAKE2s with `outLen` bytes of output (the addon's blake2sMac). */
export type KeyedBlake2s = (key: Buffer, data: Buffer, outLen: number) => Buffer;

export interface StaticKeys {
  privateKey: Buffer;
  publicKey: Buffer;
}

export function hash(...parts: Buffer[]): Buffer {
  const h = createHash("blake2s256");
  for (const part of parts) h.update(part);
  return h.digest();
}

function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac("blake2s256", key);
  for (const part of parts) h.update(part);
  return h.digest();
}

/** HKDF over HMAC-BLAKE2s as the whitepaper's KDF_n: n 32-byte outputs. */
export function kdf(n: 1 | 2 | 3, key: Buffer, input: Buffer): Buffer[] {
  const prk = hmac(key, input);
  const out: Buffer[] = [];
  let previous: Buffer = EMPTY;
  for (let i = 1; i <= n; i++) {
    previous = hmac(prk, previous, Buffer.from([i]));
    out.push(previous);
  }
  prk.fill(0);
  return out;
}

function nonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

export function aeadSeal(key: Buffer, counter: bigint, plaintext: Buffer, aad: Buffer): Buffer {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce(counter), { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** undefined when authentication fails. */
export function aeadOpen(key: Buffer, counter: bigint, sealed: Buffer, aad: Buffer): Buffer | undefined {
  return openWithNonce(key, nonce(counter), sealed, aad);
}

function openWithNonce(key: Buffer, iv: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < 16) return undefined;
  const decipher = createDecipheriv("chacha20-poly1305", key, iv, { authTagLength: 16 });
  decipher.setAAD(aad, { plaintextLength: sealed.length - 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha §2.2) from OpenSSL's raw ChaCha20, which has no HChaCha20
 * of its own: a ChaCha20 block is rounds(S) + S, and with OpenSSL's 16-byte IV (block counter
 * word, then the 96-bit nonce) set to HChaCha20's 128-bit nonce, S is exactly HChaCha20's input
 * state. HChaCha20's output is rounds(S) words 0-3 and 12-15: the block minus those words of S.
 */
export function hchacha20(key: Buffer, nonce16: Buffer): Buffer {
  const block = createCipheriv("chacha20", key, nonce16).update(Buffer.alloc(64));
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) {
    out.writeUInt32LE((block.readUInt32LE(i * 4) - SIGMA[i]!) >>> 0, i * 4);
    out.writeUInt32LE((block.readUInt32LE(48 + i * 4) - nonce16.readUInt32LE(i * 4)) >>> 0, 16 + i * 4);
  }
  block.fill(0);
  return out;
}

/** XChaCha20-Poly1305 encryption (the cookie reply's). */
export function xaeadSeal(key: Buffer, nonce24: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const subkey = hchacha20(key, nonce24.subarray(0, 16));
  const iv = Buffer.concat([Buffer.alloc(4), nonce24.subarray(16, 24)]);
  const cipher = createCipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  subkey.fill(0);
  return sealed;
}

/** XChaCha20-Poly1305 decryption (the cookie reply's): undefined when authentication fails. */
export function xaeadOpen(key: Buffer, nonce24: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  const subkey = hchacha20(key, nonce24.subarray(0, 16));
  const iv = Buffer.concat([Buffer.alloc(4), nonce24.subarray(16, 24)]);
  const opened = openWithNonce(subkey, iv, sealed, aad);
  subkey.fill(0);
  return opened;
}

const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

function privateKeyObject(raw: Buffer) {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
}

export function publicKeyOf(privateKey: Buffer): Buffer {
  const spki = createPublicKey(privateKeyObject(privateKey)).export({ format: "der", type: "spki" });
  return Buffer.from(spki.subarray(X25519_SPKI_PREFIX.length));
}

/** A new Curve25519 key pair (the private key clamped, as `wg genkey` writes it). */
export function generateStaticKeys(): StaticKeys {
  const { privateKey } = generateKeyPairSync("x25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const raw = Buffer.from(der.subarray(X25519_PKCS8_PREFIX.length));
  raw[0]! &= 248;
  raw[31]! &= 127;
  raw[31]! |= 64;
  return { privateKey: raw, publicKey: publicKeyOf(raw) };
}

/** X25519; throws when the result is all zeros (a low-order point), which the protocol rejects. */
export function dh(privateKey: Buffer, publicKey: Buffer): Buffer {
  const shared = diffieHellman({
    privateKey: privateKeyObject(privateKey),
    publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]), format: "der", type: "spki" }),
  });
  if (timingSafeEqual(shared, ZERO_KEY)) throw new Error("X25519 produced the all-zero shared secret");
  return shared;
}

/** TAI64N of `unixNanos`: 2^62 + 10 + seconds (big-endian 64), then nanoseconds (big-endian 32). */
export function tai64n(unixNanos: bigint): Buffer {
  const out = Buffer.alloc(12);
  out.writeBigUInt64BE(0x400000000000000an + unixNanos / 1_000_000_000n, 0);
  out.writeUInt32BE(Number(unixNanos % 1_000_000_000n), 8);
  return out;
}

/** The chaining key and hash both sides start from, given the responder's static public key. */
function initialState(responderPublic: Buffer): { chainKey: Buffer; hash: Buffer } {
  const chainKey = hash(CONSTRUCTION);
  return { chainKey, hash: hash(hash(chainKey, IDENTIFIER), responderPublic) };
}

export function mac1Key(publicKey: Buffer): Buffer {
  return hash(LABEL_MAC1, publicKey);
}

export function cookieKey(publicKey: Buffer): Buffer {
  return hash(LABEL_COOKIE, publicKey);
}

/** mac2 of an initiation or response: MAC(cookie, everything before mac2, mac1 included). */
function mac2Of(message: Buffer, cookie: Buffer, mac: KeyedBlake2s): Buffer {
  return mac(cookie, message.subarray(0, message.length - 16), 16);
}

/** Writes mac1 (and mac2 with a cookie) into the last 32 bytes of `message`; returns mac1. */
function writeMacs(message: Buffer, receiverPublic: Buffer, mac: KeyedBlake2s, cookie: Buffer | undefined): Buffer {
  const at = message.length - 32;
  const mac1 = mac(mac1Key(receiverPublic), message.subarray(0, at), 16);
  mac1.copy(message, at);
  if (cookie) mac2Of(message, cookie, mac).copy(message, at + 16);
  else message.fill(0, at + 16);
  return mac1;
}

/** The mac1 field of an initiation or response (a copy): the associated data of a cookie reply to it. */
export function mac1Of(message: Buffer): Buffer {
  return Buffer.from(message.subarray(message.length - 32, message.length - 16));
}

/** The message carries a mac2 at all (a sender without a cookie leaves it zero). */
export function hasMac2(message: Buffer): boolean {
  return !timingSafeEqual(message.subarray(message.length - 16), ZERO_KEY.subarray(0, 16));
}

/** mac2 of a received initiation or response, checked against the cookie its sender should hold. */
export function validMac2(message: Buffer, cookie: Buffer, mac: KeyedBlake2s): boolean {
  return timingSafeEqual(mac2Of(message, cookie, mac), message.subarray(message.length - 16));
}

/** mac1 of a received initiation or response, checked against our static public key. */
export function validMac1(message: Buffer, ourPublic: Buffer, mac: KeyedBlake2s): boolean {
  const at = message.length - 32;
  const expected = mac(mac1Key(ourPublic), message.subarray(0, at), 16);
  return timingSafeEqual(expected, message.subarray(at, at + 16));
}

export interface TransportKeys {
  sendKey: Buffer;
  recvKey: Buffer;
}

/** What the initiator keeps between sending the initiation and receiving the response. */
export interface InitiatorState {
  localIndex: number;
  chainKey: Buffer;
  hash: Buffer;
  ephemeralPrivate: Buffer;
  /** mac1 of the initiation: the cookie reply's associated data. */
  mac1: Buffer;
}

export interface InitiationInput {
  local: StaticKeys;
  remotePublic: Buffer;
  presharedKey: Buffer | undefined;
  localIndex: number;
  timestamp: Buffer;
  cookie: Buffer | undefined;
  mac: KeyedBlake2s;
  /** For tests: a fixed ephemeral key. */
  ephemeral?: StaticKeys;
}

export function createInitiation(input: InitiationInput): { message: Buffer; state: InitiatorState } {
  let { chainKey, hash: h } = initialState(input.remotePublic);
  const ephemeral = input.ephemeral ?? generateStaticKeys();
  const message = Buffer.alloc(INITIATION_LEN);
  message.writeUInt32LE(1, 0);
  message.writeUInt32LE(input.localIndex, 4);
  ephemeral.publicKey.copy(message, 8);
  [chainKey] = kdf(1, chainKey, ephemeral.publicKey) as [Buffer];
  h = hash(h, ephemeral.publicKey);
  let key: Buffer;
  [chainKey, key] = kdf(2, chainKey, dh(ephemeral.privateKey, input.remotePublic)) as [Buffer, Buffer];
  const encryptedStatic = aeadSeal(key, 0n, input.local.publicKey, h);
  encryptedStatic.copy(message, 40);
  h = hash(h, encryptedStatic);
  [chainKey, key] = kdf(2, chainKey, dh(input.local.privateKey, input.remotePublic)) as [Buffer, Buffer];
  const encryptedTimestamp = aeadSeal(key, 0n, input.timestamp, h);
  encryptedTimestamp.copy(message, 88);
  h = hash(h, encryptedTimestamp);
  key.fill(0);
  const mac1 = writeMacs(message, input.remotePublic, input.mac, input.cookie);
  return { message, state: { localIndex: input.localIndex, chainKey, hash: h, ephemeralPrivate: ephemeral.privateKey, mac1 } };
}

/** A decrypted initiation, before the responder has decided to answer it. */
export interface ConsumedInitiation {
  senderIndex: number;
  initiatorPublic: Buffer;
  timestamp: Buffer;
  ephemeralPublic: Buffer;
  chainKey: Buffer;
  hash: Buffer;
}

/** Decrypts an initiation (mac1 already checked); undefined if it does not authenticate. */
export function consumeInitiation(message: Buffer, local: StaticKeys): ConsumedInitiation | undefined {
  if (message.length !== INITIATION_LEN || message.readUInt32LE(0) !== 1) return undefined;
  try {
    let { chainKey, hash: h } = initialState(local.publicKey);
    const ephemeralPublic = Buffer.from(message.subarray(8, 40));
    [chainKey] = kdf(1, chainKey, ephemeralPublic) as [Buffer];
    h = hash(h, ephemeralPublic);
    let key: Buffer;
    [chainKey, key] = kdf(2, chainKey, dh(local.privateKey, ephemeralPublic)) as [Buffer, Buffer];
    const encryptedStatic = message.subarray(40, 88);
    const initiatorPublic = aeadOpen(key, 0n, encryptedStatic, h);
    if (!initiatorPublic) return undefined;
    h = hash(h, encryptedStatic);
    [chainKey, key] = kdf(2, chainKey, dh(local.privateKey, initiatorPublic)) as [Buffer, Buffer];
    const encryptedTimestamp = message.subarray(88, 116);
    const timestamp = aeadOpen(key, 0n, encryptedTimestamp, h);
    key.fill(0);
    if (!timestamp) return undefined;
    h = hash(h, encryptedTimestamp);
    return { senderIndex: message.readUInt32LE(4), initiatorPublic, timestamp, ephemeralPublic, chainKey, hash: h };
  } catch {
    return undefined; // a low-order ephemeral or static key
  }
}

export interface ResponseInput {
  local: StaticKeys;
  consumed: ConsumedInitiation;
  presharedKey: Buffer | undefined;
  localIndex: number;
  cookie: Buffer | undefined;
  mac: KeyedBlake2s;
  ephemeral?: StaticKeys;
}

export function createResponse(input: ResponseInput): { message: Buffer; keys: TransportKeys } {
  const { consumed } = input;
  let chainKey = consumed.chainKey;
  let h = consumed.hash;
  const ephemeral = input.ephemeral ?? generateStaticKeys();
  const message = Buffer.alloc(RESPONSE_LEN);
  message.writeUInt32LE(2, 0);
  message.writeUInt32LE(input.localIndex, 4);
  message.writeUInt32LE(consumed.senderIndex, 8);
  ephemeral.publicKey.copy(message, 12);
  [chainKey] = kdf(1, chainKey, ephemeral.publicKey) as [Buffer];
  h = hash(h, ephemeral.publicKey);
  [chainKey] = kdf(1, chainKey, dh(ephemeral.privateKey, consumed.ephemeralPublic)) as [Buffer];
  [chainKey] = kdf(1, chainKey, dh(ephemeral.privateKey, consumed.initiatorPublic)) as [Buffer];
  let tau: Buffer;
  let key: Buffer;
  [chainKey, tau, key] = kdf(3, chainKey, input.presharedKey ?? ZERO_KEY) as [Buffer, Buffer, Buffer];
  h = hash(h, tau);
  const encryptedNothing = aeadSeal(key, 0n, EMPTY, h);
  encryptedNothing.copy(message, 44);
  writeMacs(message, consumed.initiatorPublic, input.mac, input.cookie);
  const [recvKey, sendKey] = kdf(2, chainKey, EMPTY) as [Buffer, Buffer];
  ephemeral.privateKey.fill(0);
  key.fill(0);
  return { message, keys: { sendKey, recvKey } };
}

/** The initiator's side of a response (mac1 already checked); undefined if it does not authenticate. */
export function consumeResponse(
  message: Buffer,
  state: InitiatorState,
  local: StaticKeys,
  presharedKey: Buffer | undefined,
): TransportKeys | undefined {
  if (message.length !== RESPONSE_LEN || message.readUInt32LE(0) !== 2) return undefined;
  try {
    let chainKey = state.chainKey;
    let h = state.hash;
    const ephemeralPublic = message.subarray(12, 44);
    [chainKey] = kdf(1, chainKey, ephemeralPublic) as [Buffer];
    h = hash(h, ephemeralPublic);
    [chainKey] = kdf(1, chainKey, dh(state.ephemeralPrivate, ephemeralPublic)) as [Buffer];
    [chainKey] = kdf(1, chainKey, dh(local.privateKey, ephemeralPublic)) as [Buffer];
    let tau: Buffer;
    let key: Buffer;
    [chainKey, tau, key] = kdf(3, chainKey, presharedKey ?? ZERO_KEY) as [Buffer, Buffer, Buffer];
    h = hash(h, tau);
    const opened = aeadOpen(key, 0n, message.subarray(44, 60), h);
    key.fill(0);
    if (!opened) return undefined;
    const [sendKey, recvKey] = kdf(2, chainKey, EMPTY) as [Buffer, Buffer];
    return { sendKey, recvKey };
  } catch {
    return undefined;
  }
}

/** The cookie of a cookie reply to the message whose mac1 was `mac1`, from the peer `remotePublic`. */
export function consumeCookieReply(message: Buffer, remotePublic: Buffer, mac1: Buffer): Buffer | undefined {
  if (message.length !== COOKIE_REPLY_LEN || message.readUInt32LE(0) !== 3) return undefined;
  return xaeadOpen(cookieKey(remotePublic), message.subarray(8, 32), message.subarray(32, 64), mac1);
}

/**
 * A cookie reply (type 3, whitepaper §5.4.7) to the initiation or response `received`: the
 * receiver index is the message's sender index, the cookie sealed with XChaCha20-Poly1305 under
 * HASH("cookie--" || our public key) and a random 24-byte nonce, the message's mac1 as
 * associated data (so only who sent that message can open it).
 */
export function createCookieReply(received: Buffer, ourPublic: Buffer, cookie: Buffer, nonce24: Buffer = randomBytes(24)): Buffer {
  const reply = Buffer.alloc(COOKIE_REPLY_LEN);
  reply.writeUInt32LE(3, 0);
  reply.writeUInt32LE(received.readUInt32LE(4), 4);
  nonce24.copy(reply, 8);
  const key = cookieKey(ourPublic);
  xaeadSeal(key, nonce24, cookie, mac1Of(received)).copy(reply, 32);
  key.fill(0);
  return reply;
}

/** A random non-zero 32-bit session index. */
export function randomIndex(): number {
  for (;;) {
    const n = randomBytes(4).readUInt32LE(0);
    if (n !== 0) return n;
  }
}
