import { randomBytes } from "node:crypto";
import { createCookieReply, validMac2, type KeyedBlake2s } from "./noise.js";

/**
 * The responder's cookie (whitepaper §5.4.7, as wireguard-go's device/cookie.go): the cookie of
 * a source address is MAC(R_secret, source IP || source port), 16 bytes, R_secret random and
 * changed every COOKIE_SECRET_LIFETIME_MS. Under load a handshake message is only processed if
 * its mac2 was made with the cookie of the address it came from, which its sender can only have
 * learnt from a cookie reply we sent to that address: a spoofed source never gets past it.
 * Neither the secret nor a cookie is ever logged.
 */

/** COOKIE_REFRESH_TIME: R_secret is replaced after this long, and older cookies stop validating. */
export const COOKIE_SECRET_LIFETIME_MS = 120_000;
const COOKIE_LEN = 16;

export interface CookieSource {
  /** IPv4 address, host order (as the engine hands it up), or an IPv6 one (16 bytes). */
  ip: number | Buffer;
  port: number;
}

export class CookieResponder {
  private secret: Buffer;
  private secretAt: number;

  constructor(
    private ourPublic: Buffer,
    private readonly mac: KeyedBlake2s,
    private readonly now: () => number,
    private readonly random: (size: number) => Buffer = randomBytes,
  ) {
    this.secret = this.random(32);
    this.secretAt = now();
  }

  /** A rotated static key: cookie replies are sealed under the new public key's cookie key. */
  setPublicKey(ourPublic: Buffer): void {
    this.ourPublic = Buffer.from(ourPublic);
  }

  /** mac2 of `message` (initiation or response) is the one its source's current cookie gives. */
  validMac2(message: Buffer, from: CookieSource): boolean {
    if (this.now() - this.secretAt >= COOKIE_SECRET_LIFETIME_MS) return false; // every cookie made with it is stale
    const cookie = this.cookieOf(from);
    const valid = validMac2(message, cookie, this.mac);
    cookie.fill(0);
    return valid;
  }

  /** The cookie reply that gives `from` its cookie, for the message it sent. */
  reply(message: Buffer, from: CookieSource): Buffer {
    if (this.now() - this.secretAt >= COOKIE_SECRET_LIFETIME_MS) this.renewSecret();
    const cookie = this.cookieOf(from);
    const reply = createCookieReply(message, this.ourPublic, cookie, this.random(24));
    cookie.fill(0);
    return reply;
  }

  private renewSecret(): void {
    this.secret.fill(0);
    this.secret = this.random(32);
    this.secretAt = this.now();
  }

  private cookieOf(from: CookieSource): Buffer {
    const address = typeof from.ip === "number" ? Buffer.alloc(4) : from.ip;
    if (typeof from.ip === "number") address.writeUInt32BE(from.ip >>> 0, 0);
    const source = Buffer.alloc(address.length + 2);
    address.copy(source, 0);
    source.writeUInt16BE(from.port, address.length);
    return this.mac(this.secret, source, COOKIE_LEN);
  }
}
