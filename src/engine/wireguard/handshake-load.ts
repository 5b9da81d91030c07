/**
 * "Under load" (whitepaper §5.3): the responder spends a Curve25519 computation or four on each
 * initiation, so past some rate it stops doing that for senders that have not proven their
 * address with a cookie. wireguard-go calls itself under load while its handshake queue is over
 * 1/8 full (128 of 1024) and for a second after. weft's handshake messages reach JavaScript one
 * by one through the engine's event queue, whose depth JavaScript cannot see, so the measure is
 * the arrival rate instead: more than `messagesPerSecond` initiations and responses (valid or
 * not) within one second means under load, from then until a second has passed.
 */

/** 128 per second: wireguard-go's 1/8 of its queue; a host handshakes with each peer every 2 minutes. */
export const DEFAULT_UNDER_LOAD_MESSAGES_PER_SECOND = 128;
/** wireguard-go's UnderLoadAfterTime. */
const UNDER_LOAD_HOLD_MS = 1000;
const WINDOW_MS = 1000;

export class HandshakeLoad {
  private windowStart = -Infinity;
  private inWindow = 0;
  private underLoadUntil = -Infinity;

  constructor(
    private readonly messagesPerSecond: number,
    private readonly now: () => number,
  ) {
    if (!(messagesPerSecond >= 0)) throw new Error(`wireguard underLoadMessagesPerSecond ${messagesPerSecond} must be >= 0`);
  }

  /** One initiation or response arrived. */
  record(): void {
    const now = this.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    this.inWindow++;
    if (this.inWindow > this.messagesPerSecond) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
  }

  get underLoad(): boolean {
    return this.now() < this.underLoadUntil;
  }
}
