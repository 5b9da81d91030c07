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
  randomIndex,
  tai64n,
  validMac1,
  type InitiatorState,
  type KeyedBlake2s,
  type StaticKeys,
} from "./noise.js";

/**
 * WireGuard's handshake side of the userspace data path: one state per peer (its static key and
 * endpoint, an initiation in flight, the last timestamp it sent us, a cookie), answering the
 * handshake messages the engine hands up, initiating when the engine asks ("want": data for a
 * peer without a usable session, or a session due for rekeying), and the protocol's timers
 * (whitepaper §6): handshake retry every REKEY_TIMEOUT plus jitter until REKEY_ATTEMPT_TIME,
 * passive keepalive, persistent keepalive, a new handshake when sent data gets no answer, keys
 * zeroed after 3 × REJECT_AFTER_TIME without a handshake. Sessions themselves (keys, counters,
 * replay windows) live in the engine; this side only installs them. No key is ever logged.
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

/** What the C loop knows of a peer's sessions (the addon's wgPeerStats()). */
export type PeerStats = NativeWireguardPeerStats;

/** The engine's session table, as the addon offers it for one open engine. */
export interface SessionDataPath {
  setPeer(id: number, ip: number, port: number): void;
  removePeer(id: number): boolean;
  setKeypair(id: number, localIndex: number, remoteIndex: number, sendKey: Buffer, recvKey: Buffer, initiator: boolean): void;
  clearKeypairs(id: number): boolean;
  stats(id: number): PeerStats | null;
  send(ip: number, port: number, message: Buffer): void;
  sendKeepalive(id: number): boolean;
  mac: KeyedBlake2s;
}

export type EngineEvent =
  | { kind: "message"; address: number; port: number; data: Buffer }
  | { kind: "want"; peer: number };

export interface SessionLogger {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

export interface Endpoint {
  ip: number;
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
}

export interface SessionOptions {
  local: StaticKeys;
  presharedKey: Buffer | undefined;
  timers: WireguardTimers;
  /** PersistentKeepaliveInterval; 0: off. */
  persistentKeepaliveMs: number;
  logger: SessionLogger | undefined;
}

/** Why handshake messages were dropped (for /metrics and tests). */
export type HandshakeDrop =
  | "bad_mac1" | "undecryptable" | "unknown_peer" | "replayed_timestamp" | "flood" | "unknown_index" | "send_error";

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
  private nextId = 1;
  private lastTimestampNanos = 0n;
  readonly drops: Record<HandshakeDrop, number> = {
    bad_mac1: 0, undecryptable: 0, unknown_peer: 0, replayed_timestamp: 0, flood: 0, unknown_index: 0, send_error: 0,
  };
  handshakesCompleted = 0;

  constructor(
    private readonly path: SessionDataPath,
    private readonly options: SessionOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Adds the peer or updates its endpoint (a changed endpoint gets a new handshake). Returns its id. */
  upsertPeer(publicKey: Buffer, endpoint: Endpoint): number {
    const name = publicKey.toString("base64");
    const known = this.byKey.get(name);
    if (known) {
      if (known.endpoint.ip !== endpoint.ip || known.endpoint.port !== endpoint.port) {
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
      sessionIndexes: [], handshakes: 0,
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
      endpoint: `${ipText(peer.endpoint.ip)}:${peer.endpoint.port}`,
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
    if (type === 1 && data.length === INITIATION_LEN) this.onInitiation(data, from);
    else if (type === 2 && data.length === RESPONSE_LEN) this.onResponse(data, from);
    else if (type === 3 && data.length === COOKIE_REPLY_LEN) this.onCookieReply(data);
  }

  /** The timers; call every few hundred milliseconds (the engine wrapper does, every tickMs). */
  tick(): void {
    const now = this.now();
    const { timers, persistentKeepaliveMs } = this.options;
    for (const peer of this.byId.values()) {
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
    const cookie = peer.cookie && now - peer.cookie.at < COOKIE_LIFETIME_MS ? peer.cookie.value : undefined;
    const { message, state } = createInitiation({
      local: this.options.local, remotePublic: peer.publicKey, presharedKey: this.options.presharedKey, localIndex,
      timestamp: this.timestamp(), cookie, mac: this.path.mac,
    });
    const jitter = randomInt(REKEY_JITTER_MS);
    peer.initiation = { state, sentAt: now, firstAttemptAt: previous?.firstAttemptAt ?? now, retryAt: now + this.options.timers.rekeyTimeoutMs + jitter };
    this.pending.set(localIndex, peer);
    this.liveIndexes.add(localIndex);
    this.options.logger?.debug({ peer: peer.name, retry }, "wireguard: handshake initiation");
    this.sendTo(peer.endpoint, message);
  }

  private onInitiation(message: Buffer, from: Endpoint): void {
    const { local, presharedKey } = this.options;
    if (!validMac1(message, local.publicKey, this.path.mac)) return void this.drops.bad_mac1++;
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
      local, consumed, presharedKey, localIndex, cookie: undefined, mac: this.path.mac,
    });
    this.roam(peer, from);
    this.path.setKeypair(peer.id, localIndex, consumed.senderIndex, keys.sendKey, keys.recvKey, false);
    keys.sendKey.fill(0);
    keys.recvKey.fill(0);
    this.recordSession(peer, localIndex, now);
    this.sendTo(from, response);
  }

  private onResponse(message: Buffer, from: Endpoint): void {
    const { local, presharedKey } = this.options;
    if (!validMac1(message, local.publicKey, this.path.mac)) return void this.drops.bad_mac1++;
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

  private onCookieReply(message: Buffer): void {
    const receiverIndex = message.readUInt32LE(4);
    const peer = this.pending.get(receiverIndex);
    const initiation = peer?.initiation;
    if (!peer || !initiation) return void this.drops.unknown_index++;
    const cookie = consumeCookieReply(message, peer.publicKey, initiation.state.mac1);
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
    peer.handshakes++;
    this.handshakesCompleted++;
    this.options.logger?.debug({ peer: peer.name, endpoint: `${ipText(peer.endpoint.ip)}:${peer.endpoint.port}` }, "wireguard: handshake complete");
  }

  /** A handshake message authenticated from `from`: the peer is there now (whitepaper §2.1). */
  private roam(peer: PeerState, from: Endpoint): void {
    if (peer.endpoint.ip === from.ip && peer.endpoint.port === from.port) return;
    peer.endpoint = { ...from };
    this.path.setPeer(peer.id, from.ip, from.port);
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

  private sendTo(endpoint: Endpoint, message: Buffer): void {
    try {
      this.path.send(endpoint.ip, endpoint.port, message);
    } catch (error) {
      this.drops.send_error++;
      this.options.logger?.debug({ endpoint: ipText(endpoint.ip), error: String(error) }, "wireguard: handshake message not sent");
    }
  }
}

function ipText(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".");
}
