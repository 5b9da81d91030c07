import { performance } from "node:perf_hooks";
import { randomInt } from "node:crypto";
import type { NativeWireguardPeerStats } from "../native-addon.js";
import {
  COOKIE_REPLY_LEN,
  INITIATION_LEN,
  RESPONSE_LEN,
  consumeCookieReply,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  hasMac2,
  mac1Key,
  mac1Of,
  randomIndex,
  tai64n,
  validMac1,
  type InitiatorState,
  type KeyedBlake2s,
  type StaticKeys,
} from "./noise.js";
import { CookieResponder } from "./cookie.js";
import { DEFAULT_UNDER_LOAD_MESSAGES_PER_SECOND, HandshakeLoad } from "./handshake-load.js";
import { DEFAULT_RATE_LIMITS, SourceRateLimiter, type RateLimits } from "./rate-limiter.js";
import { formatIpv6 } from "../../net/ipv6.js";

/**
 * WireGuard's handshake side of the userspace data path: one state per peer (its static key and
 * endpoint, an initiation in flight, the last timestamp it sent us, a cookie), answering the
 * handshake messages the engine hands up, initiating when the engine asks ("want": data for a
 * peer without a usable session, or a session due for rekeying), and the protocol's timers
 * (whitepaper §6): handshake retry every REKEY_TIMEOUT plus jitter until REKEY_ATTEMPT_TIME,
 * passive keepalive, persistent keepalive, a new handshake when sent data gets no answer, keys
 * zeroed after 3 × REJECT_AFTER_TIME without a handshake. Under load (handshake-load.ts) it
 * defends itself as §5.3 says: an initiation or response without a valid mac2 gets a cookie
 * reply instead of an answer, and those with one pass a per-source token bucket. Sessions
 * themselves (keys, counters, replay windows) live in the engine; this side only installs them.
 * No key or cookie is ever logged.
 */

export interface WireguardTimers {
  /** REKEY_AFTER_TIME, 120 s. */
  rekeyAfterMs: number;
  /** REJECT_AFTER_TIME, 180 s. */
  rejectAfterMs: number;
  /** REKEY_TIMEOUT, 5 s: handshake retry interval (plus up to 333 ms of jitter). */
  rekeyTimeoutMs: number;
  /** KEEPALIVE_TIMEOUT, 10 s. */
  keepaliveMs: number;
  /** REKEY_ATTEMPT_TIME, 90 s: how long one handshake is retried. */
  rekeyAttemptMs: number;
}

export const DEFAULT_WIREGUARD_TIMERS: Readonly<WireguardTimers> = Object.freeze({
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  rekeyTimeoutMs: 5_000,
  keepaliveMs: 10_000,
  rekeyAttemptMs: 90_000,
});

const REKEY_JITTER_MS = 334;
/** wireguard-go's limit: at most one initiation per peer per 20 ms is answered. */
const MIN_INITIATION_INTERVAL_MS = 20;
/** COOKIE_REFRESH_TIME: a cookie is good for mac2 this long. */
const COOKIE_LIFETIME_MS = 120_000;
/**
 * After a key rotation, peers with sessions get an initiation with the new key this much later
 * unless they handshook with it first (a weft peer does as soon as it reads our new lease; a
 * kernel peer only when it has something to send).
 */
const ROTATION_HANDSHAKE_DELAY_MS = 1000;

/** The responder's DoS defence (whitepaper §5.3); tests lower the threshold. */
export interface HandshakeDefence {
  /** More initiations and responses than this within a second: under load. */
  underLoadMessagesPerSecond: number;
  /** The per-source token bucket applied under load. */
  rateLimits: RateLimits;
}

export const DEFAULT_HANDSHAKE_DEFENCE: Readonly<HandshakeDefence> = Object.freeze({
  underLoadMessagesPerSecond: DEFAULT_UNDER_LOAD_MESSAGES_PER_SECOND,
  rateLimits: DEFAULT_RATE_LIMITS,
});

/** What the C loop knows of a peer's sessions (the addon's wgPeerStats()). */
export type PeerStats = NativeWireguardPeerStats;

/** The engine's session table, as the addon offers it for one open engine. */
export interface SessionDataPath {
  /** `ip`: a host-order IPv4 number, or a 16-byte IPv6 address on the IPv6 interface. */
  setPeer(id: number, ip: EndpointAddress, port: number): void;
  removePeer(id: number): boolean;
  setKeypair(id: number, localIndex: number, remoteIndex: number, sendKey: Buffer, recvKey: Buffer, initiator: boolean): void;
  clearKeypairs(id: number): boolean;
  stats(id: number): PeerStats | null;
  send(ip: EndpointAddress, port: number, message: Buffer): void;
  sendKeepalive(id: number): boolean;
  mac: KeyedBlake2s;
  /**
   * The engine checks mac1 itself before it queues a handshake message (its admission, see
   * native/README.md "WireGuard"): given HASH("mac1----" || our public key) at start and at every
   * key change. Absent in data paths that hand up everything.
   */
  setMac1Key?(key: Buffer): void;
}

export type EngineEvent =
  | { kind: "message"; address: EndpointAddress; port: number; data: Buffer }
  | { kind: "want"; peer: number };

export interface SessionLogger {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

/** An IPv4 address (host order, as the engine hands it up) or an IPv6 one (16 bytes, network order). */
export type EndpointAddress = number | Buffer;

export interface Endpoint {
  ip: EndpointAddress;
  port: number;
}

interface Initiation {
  state: InitiatorState;
  sentAt: number;
  firstAttemptAt: number;
  retryAt: number;
}

interface PeerState {
  id: number;
  publicKey: Buffer;
  /** base64, for logs: a public key is public. */
  name: string;
  endpoint: Endpoint;
  initiation: Initiation | undefined;
  lastTimestamp: Buffer | undefined;
  lastInitiationAt: number;
  cookie: { value: Buffer; at: number } | undefined;
  lastHandshakeAt: number | undefined;
  zeroed: boolean;
  /** Our receiver indexes of this peer's sessions in the engine, newest last (at most 3 live). */
  sessionIndexes: number[];
  handshakes: number;
  /** Our index and mac1 of the last response we sent it: a cookie reply to it names that index. */
  lastResponse: { index: number; mac1: Buffer } | undefined;
  /** Set by a key rotation: initiate with the new key then, unless a handshake came first. */
  rotationHandshakeAt: number | undefined;
}

export interface SessionOptions {
  local: StaticKeys;
  presharedKey: Buffer | undefined;
  timers: WireguardTimers;
  /** PersistentKeepaliveInterval; 0: off. */
  persistentKeepaliveMs: number;
  logger: SessionLogger | undefined;
  /** Default DEFAULT_HANDSHAKE_DEFENCE. */
  defence?: HandshakeDefence;
}

/** Why handshake messages were dropped (for /metrics and tests). */
export type HandshakeDrop =
  | "bad_mac1" | "undecryptable" | "unknown_peer" | "replayed_timestamp" | "flood" | "unknown_index" | "send_error"
  // Under load: no mac2, answered with a cookie reply; a mac2 that is not its source's (stale, or
  // another address's), answered with a fresh cookie too; a valid mac2 over the source's rate.
  | "cookie_sent" | "mac2_invalid" | "rate_limited"
  // The type's three reserved bytes are not zero (wireguard-go reads the four as one type).
  | "malformed";

export interface PeerSessionStatus {
  publicKey: string;
  endpoint: string;
  handshakes: number;
  lastHandshakeAgeMs: number | null;
  handshakeInFlight: boolean;
}

export class WireguardSessions {
  private readonly byId = new Map<number, PeerState>();
  private readonly byKey = new Map<string, PeerState>();
  /** Our index of an initiation in flight -> its peer. */
  private readonly pending = new Map<number, PeerState>();
  private readonly liveIndexes = new Set<number>();
  /** Our index of the last response sent to a peer -> that peer (for cookie replies to responses). */
  private readonly responded = new Map<number, PeerState>();
  private nextId = 1;
  private lastTimestampNanos = 0n;
  private local: StaticKeys;
  private readonly load: HandshakeLoad;
  private readonly cookies: CookieResponder;
  private readonly limiter: SourceRateLimiter;
  readonly drops: Record<HandshakeDrop, number> = {
    bad_mac1: 0, undecryptable: 0, unknown_peer: 0, replayed_timestamp: 0, flood: 0, unknown_index: 0, send_error: 0,
    cookie_sent: 0, mac2_invalid: 0, rate_limited: 0, malformed: 0,
  };
  handshakesCompleted = 0;
  cookieRepliesSent = 0;

  constructor(
    private readonly path: SessionDataPath,
    private readonly options: SessionOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.local = { privateKey: Buffer.from(options.local.privateKey), publicKey: Buffer.from(options.local.publicKey) };
    const defence = options.defence ?? DEFAULT_HANDSHAKE_DEFENCE;
    this.load = new HandshakeLoad(defence.underLoadMessagesPerSecond, now);
    this.cookies = new CookieResponder(this.local.publicKey, path.mac, now);
    this.limiter = new SourceRateLimiter(defence.rateLimits, now);
    path.setMac1Key?.(mac1Key(this.local.publicKey));
  }

  /** Our static public key (changes with setStaticKeys). */
  get publicKey(): Buffer {
    return this.local.publicKey;
  }

  get underLoad(): boolean {
    return this.load.underLoad;
  }

  /**
   * A rotated static key. Sessions stay (their keys do not depend on it) until handshakes with the
   * new key replace them, so traffic flows until each peer switches; initiations in flight (made
   * with the old key, their responses could not be opened) are forgotten; peers with sessions or
   * such an initiation get one with the new key ROTATION_HANDSHAKE_DELAY_MS later unless they
   * handshake first.
   */
  setStaticKeys(keys: StaticKeys): void {
    this.local.privateKey.fill(0);
    this.local = { privateKey: Buffer.from(keys.privateKey), publicKey: Buffer.from(keys.publicKey) };
    // The engine's admission checks mac1 with the new key from now on, as admit() does.
    this.path.setMac1Key?.(mac1Key(keys.publicKey));
    this.cookies.setPublicKey(keys.publicKey);
    const at = this.now() + ROTATION_HANDSHAKE_DELAY_MS;
    for (const peer of this.byId.values()) {
      const wasInitiating = peer.initiation !== undefined;
      this.forgetInitiation(peer);
      // (A cookie from the peer stays good: it is bound to our address, not to our key.)
      peer.rotationHandshakeAt = wasInitiating || (peer.lastHandshakeAt !== undefined && !peer.zeroed) ? at : undefined;
    }
  }

  /** Adds the peer or updates its endpoint (a changed endpoint gets a new handshake). Returns its id. */
  upsertPeer(publicKey: Buffer, endpoint: Endpoint): number {
    const name = publicKey.toString("base64");
    const known = this.byKey.get(name);
    if (known) {
      if (!sameEndpoint(known.endpoint, endpoint)) {
        known.endpoint = { ...endpoint };
        this.path.setPeer(known.id, endpoint.ip, endpoint.port);
        this.options.logger?.info({ peer: name }, "wireguard: peer endpoint changed, new handshake");
        this.initiate(known, true);
      }
      return known.id;
    }
    const peer: PeerState = {
      id: this.nextId++, publicKey: Buffer.from(publicKey), name, endpoint: { ...endpoint }, initiation: undefined,
      lastTimestamp: undefined, lastInitiationAt: -Infinity, cookie: undefined, lastHandshakeAt: undefined, zeroed: false,
      sessionIndexes: [], handshakes: 0, lastResponse: undefined, rotationHandshakeAt: undefined,
    };
    this.byId.set(peer.id, peer);
    this.byKey.set(name, peer);
    this.path.setPeer(peer.id, endpoint.ip, endpoint.port);
    return peer.id;
  }

  /** Forgets the peer; the engine zeroes its sessions at once. */
  removePeer(publicKey: Buffer): boolean {
    const peer = this.byKey.get(publicKey.toString("base64"));
    if (!peer) return false;
    this.forgetInitiation(peer);
    this.forgetResponse(peer);
    for (const index of peer.sessionIndexes) this.liveIndexes.delete(index);
    this.byKey.delete(peer.name);
    this.byId.delete(peer.id);
    this.path.removePeer(peer.id);
    return true;
  }

  peerId(publicKey: Buffer): number | undefined {
    return this.byKey.get(publicKey.toString("base64"))?.id;
  }

  status(): PeerSessionStatus[] {
    const now = this.now();
    return [...this.byId.values()].map((peer) => ({
      publicKey: peer.name,
      endpoint: endpointText(peer.endpoint),
      handshakes: peer.handshakes,
      lastHandshakeAgeMs: peer.lastHandshakeAt === undefined ? null : now - peer.lastHandshakeAt,
      handshakeInFlight: peer.initiation !== undefined,
    }));
  }

  handle(event: EngineEvent): void {
    if (event.kind === "want") {
      const peer = this.byId.get(event.peer);
      if (peer) this.initiate(peer, false);
      return;
    }
    const { data } = event;
    const from = { ip: event.address, port: event.port };
    const type = data.readUInt32LE(0);
    if (type === 1 && data.length === INITIATION_LEN) {
      if (this.admit(data, from)) this.onInitiation(data, from);
    } else if (type === 2 && data.length === RESPONSE_LEN) {
      if (this.admit(data, from)) this.onResponse(data, from);
    } else if (type === 3 && data.length === COOKIE_REPLY_LEN) {
      this.onCookieReply(data);
    } else {
      this.drops.malformed++; // the engine checks the type byte and size; here the reserved bytes are not zero
    }
  }

  /**
   * The gate before any Curve25519 work on an initiation or response (whitepaper §5.3, in
   * wireguard-go's order): mac1 (is it for us at all), then, under load only, mac2 (has the
   * source proven its address: if not, a cookie reply and nothing else) and the source's rate.
   * The engine's admission ran before the message was queued (mac1, and a per-source bucket while
   * its queue is loaded); mac1 is checked again here (a key change may have come between), and
   * this rate limit stays: it bounds the Curve25519 work a source with a cookie causes, which the
   * engine's queue-share limit does not (it admits everything while the queue keeps up).
   */
  private admit(message: Buffer, from: Endpoint): boolean {
    this.load.record();
    let drop: HandshakeDrop | undefined;
    if (!validMac1(message, this.local.publicKey, this.path.mac)) drop = "bad_mac1";
    else if (!this.load.underLoad) return true;
    else if (!this.cookies.validMac2(message, from)) {
      drop = hasMac2(message) ? "mac2_invalid" : "cookie_sent";
      if (this.sendTo(from, this.cookies.reply(message, from))) this.cookieRepliesSent++;
    } else if (!this.limiter.allow(rateLimitKey(from.ip))) drop = "rate_limited";
    else return true;
    this.drops[drop]++;
    return false;
  }

  /** The timers; call every few hundred milliseconds (the engine wrapper does, every tickMs). */
  tick(): void {
    const now = this.now();
    const { timers, persistentKeepaliveMs } = this.options;
    this.limiter.sweep();
    for (const peer of this.byId.values()) {
      if (peer.rotationHandshakeAt !== undefined && now >= peer.rotationHandshakeAt) {
        peer.rotationHandshakeAt = undefined;
        this.initiate(peer, false);
      }
      const initiation = peer.initiation;
      if (initiation && now >= initiation.retryAt) {
        if (now - initiation.firstAttemptAt >= timers.rekeyAttemptMs) {
          this.options.logger?.warn({ peer: peer.name, endpoint: ipText(peer.endpoint.ip) }, "wireguard: handshake gave up after REKEY_ATTEMPT_TIME");
          this.forgetInitiation(peer);
        } else {
          this.initiate(peer, true);
        }
      }
      if (peer.lastHandshakeAt !== undefined && !peer.zeroed && now - peer.lastHandshakeAt >= 3 * timers.rejectAfterMs) {
        this.path.clearKeypairs(peer.id);
        peer.zeroed = true;
      }
      const stats = this.path.stats(peer.id);
      if (!stats) continue;
      const sinceTx = stats.sinceTxMs ?? Infinity;
      const sinceRx = stats.sinceRxMs ?? Infinity;
      // Passive keepalive: data came in and nothing went out for KEEPALIVE_TIMEOUT.
      const dataRx = stats.sinceDataRxMs;
      if (stats.hasCurrent && dataRx !== null && dataRx >= timers.keepaliveMs && sinceTx > dataRx) this.path.sendKeepalive(peer.id);
      // Data went out and nothing came back for KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
      const dataTx = stats.sinceDataTxMs;
      if (dataTx !== null && sinceRx > dataTx && dataTx >= timers.keepaliveMs + timers.rekeyTimeoutMs && !peer.initiation) {
        this.initiate(peer, false);
      }
      if (persistentKeepaliveMs > 0 && sinceTx >= persistentKeepaliveMs) {
        if (!stats.hasCurrent || !this.path.sendKeepalive(peer.id)) this.initiate(peer, false);
      }
    }
  }

  close(): void {
    for (const peer of [...this.byId.values()]) this.removePeer(peer.publicKey);
  }

  /** Sends an initiation unless one went out less than REKEY_TIMEOUT ago (`retry`: the timer's own resend). */
  private initiate(peer: PeerState, retry: boolean): void {
    const now = this.now();
    const previous = peer.initiation;
    if (previous && !retry && now - previous.sentAt < this.options.timers.rekeyTimeoutMs) return;
    this.forgetInitiation(peer);
    const localIndex = this.freshIndex();
    const cookie = this.freshCookie(peer, now);
    const { message, state } = createInitiation({
      local: this.local, remotePublic: peer.publicKey, presharedKey: this.options.presharedKey, localIndex,
      timestamp: this.timestamp(), cookie, mac: this.path.mac,
    });
    const jitter = randomInt(REKEY_JITTER_MS);
    peer.initiation = { state, sentAt: now, firstAttemptAt: previous?.firstAttemptAt ?? now, retryAt: now + this.options.timers.rekeyTimeoutMs + jitter };
    this.pending.set(localIndex, peer);
    this.liveIndexes.add(localIndex);
    this.options.logger?.debug({ peer: peer.name, retry }, "wireguard: handshake initiation");
    this.sendTo(peer.endpoint, message);
  }

  /** An initiation that passed admit(). */
  private onInitiation(message: Buffer, from: Endpoint): void {
    const { local } = this;
    const { presharedKey } = this.options;
    const consumed = consumeInitiation(message, local);
    if (!consumed) return void this.drops.undecryptable++;
    const peer = this.byKey.get(consumed.initiatorPublic.toString("base64"));
    if (!peer) return void this.drops.unknown_peer++;
    // TAI64N timestamps only grow: an older or equal one is a replayed initiation.
    if (peer.lastTimestamp && Buffer.compare(consumed.timestamp, peer.lastTimestamp) <= 0) return void this.drops.replayed_timestamp++;
    const now = this.now();
    if (now - peer.lastInitiationAt < MIN_INITIATION_INTERVAL_MS) return void this.drops.flood++;
    peer.lastTimestamp = consumed.timestamp;
    peer.lastInitiationAt = now;
    const localIndex = this.freshIndex();
    const { message: response, keys } = createResponse({
      local, consumed, presharedKey, localIndex, cookie: this.freshCookie(peer, now), mac: this.path.mac,
    });
    this.roam(peer, from);
    this.path.setKeypair(peer.id, localIndex, consumed.senderIndex, keys.sendKey, keys.recvKey, false);
    keys.sendKey.fill(0);
    keys.recvKey.fill(0);
    this.recordSession(peer, localIndex, now);
    this.forgetResponse(peer);
    peer.lastResponse = { index: localIndex, mac1: mac1Of(response) };
    this.responded.set(localIndex, peer);
    this.sendTo(from, response);
  }

  /** A response that passed admit(). */
  private onResponse(message: Buffer, from: Endpoint): void {
    const { local } = this;
    const { presharedKey } = this.options;
    const receiverIndex = message.readUInt32LE(8);
    const peer = this.pending.get(receiverIndex);
    const initiation = peer?.initiation;
    if (!peer || !initiation || initiation.state.localIndex !== receiverIndex) return void this.drops.unknown_index++;
    const keys = consumeResponse(message, initiation.state, local, presharedKey);
    if (!keys) return void this.drops.undecryptable++;
    this.pending.delete(receiverIndex);
    initiation.state.ephemeralPrivate.fill(0);
    peer.initiation = undefined;
    this.roam(peer, from);
    this.path.setKeypair(peer.id, receiverIndex, message.readUInt32LE(4), keys.sendKey, keys.recvKey, true);
    keys.sendKey.fill(0);
    keys.recvKey.fill(0);
    this.recordSession(peer, receiverIndex, this.now());
    // Confirms the session to the responder, which may not send on it before it hears from us.
    this.path.sendKeepalive(peer.id);
  }

  /** A cookie reply to our initiation in flight, or to the last response we sent the peer. */
  private onCookieReply(message: Buffer): void {
    const receiverIndex = message.readUInt32LE(4);
    const initiating = this.pending.get(receiverIndex);
    const responding = this.responded.get(receiverIndex);
    const peer = initiating ?? responding;
    const mac1 = initiating?.initiation?.state.mac1 ?? responding?.lastResponse?.mac1;
    if (!peer || !mac1) return void this.drops.unknown_index++;
    const cookie = consumeCookieReply(message, peer.publicKey, mac1);
    if (!cookie) return void this.drops.undecryptable++;
    // Used for mac2 from the next retry on (whitepaper §5.4.7: do not resend at once).
    peer.cookie = { value: cookie, at: this.now() };
    this.options.logger?.info({ peer: peer.name }, "wireguard: peer is under load, got a cookie");
  }

  private recordSession(peer: PeerState, localIndex: number, now: number): void {
    peer.sessionIndexes.push(localIndex);
    this.liveIndexes.add(localIndex);
    while (peer.sessionIndexes.length > 3) this.liveIndexes.delete(peer.sessionIndexes.shift()!);
    peer.lastHandshakeAt = now;
    peer.zeroed = false;
    peer.rotationHandshakeAt = undefined;
    peer.handshakes++;
    this.handshakesCompleted++;
    this.options.logger?.debug({ peer: peer.name, endpoint: endpointText(peer.endpoint) }, "wireguard: handshake complete");
  }

  /** A handshake message authenticated from `from`: the peer is there now (whitepaper §2.1). */
  private roam(peer: PeerState, from: Endpoint): void {
    if (sameEndpoint(peer.endpoint, from)) return;
    peer.endpoint = { ...from };
    this.path.setPeer(peer.id, from.ip, from.port);
  }

  /** The peer's cookie for our mac2, while it is fresh. */
  private freshCookie(peer: PeerState, now: number): Buffer | undefined {
    return peer.cookie && now - peer.cookie.at < COOKIE_LIFETIME_MS ? peer.cookie.value : undefined;
  }

  private forgetResponse(peer: PeerState): void {
    if (!peer.lastResponse) return;
    this.responded.delete(peer.lastResponse.index);
    peer.lastResponse = undefined;
  }

  private forgetInitiation(peer: PeerState): void {
    if (!peer.initiation) return;
    this.pending.delete(peer.initiation.state.localIndex);
    this.liveIndexes.delete(peer.initiation.state.localIndex);
    peer.initiation.state.ephemeralPrivate.fill(0);
    peer.initiation = undefined;
  }

  private freshIndex(): number {
    for (;;) {
      const index = randomIndex();
      if (!this.liveIndexes.has(index)) return index;
    }
  }

  /** TAI64N now, strictly increasing within this process even within one clock tick. */
  private timestamp(): Buffer {
    let nanos = BigInt(Date.now()) * 1_000_000n;
    if (nanos <= this.lastTimestampNanos) nanos = this.lastTimestampNanos + 1n;
    this.lastTimestampNanos = nanos;
    return tai64n(nanos);
  }

  private sendTo(endpoint: Endpoint, message: Buffer): boolean {
    try {
      this.path.send(endpoint.ip, endpoint.port, message);
      return true;
    } catch (error) {
      this.drops.send_error++;
      this.options.logger?.debug({ endpoint: ipText(endpoint.ip), error: String(error) }, "wireguard: handshake message not sent");
      return false;
    }
  }
}

function ipText(ip: EndpointAddress): string {
  if (typeof ip !== "number") return formatIpv6(ipv6FromBytes(ip));
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".");
}

function endpointText(endpoint: Endpoint): string {
  return typeof endpoint.ip === "number" ? `${ipText(endpoint.ip)}:${endpoint.port}` : `[${ipText(endpoint.ip)}]:${endpoint.port}`;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port) return false;
  if (typeof a.ip === "number" || typeof b.ip === "number") return a.ip === b.ip;
  return a.ip.equals(b.ip);
}

/** The rate limiter's bucket of a source: an IPv4 address, or an IPv6 source's /64 (as wireguard-go's). */
function rateLimitKey(ip: EndpointAddress): number | string {
  return typeof ip === "number" ? ip : ip.subarray(0, 8).toString("hex");
}

function ipv6FromBytes(bytes: Buffer): bigint {
  return BigInt(`0x${bytes.toString("hex").padStart(32, "0")}`);
}
