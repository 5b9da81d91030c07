/**
 * A token bucket per source IP for handshake messages under load (wireguard-go's ratelimiter:
 * 20 per second, a burst of 5). Memory is bounded: an entry idle long enough to have refilled
 * is indistinguishable from a new one and is swept, and at most `maxSources` addresses are
 * tracked; a new address beyond that is refused (as the kernel's limiter does), which only
 * costs senders with a valid cookie a retry. Sources are IPv4 addresses (host order).
 */
export interface RateLimits {
  perSecond: number;
  burst: number;
  maxSources: number;
}

export const DEFAULT_RATE_LIMITS: Readonly<RateLimits> = Object.freeze({ perSecond: 20, burst: 5, maxSources: 4096 });

/** A full sweep when the table is full at most this often: a flood of new addresses stays O(1) per message. */
const FULL_SWEEP_INTERVAL_MS = 100;

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceRateLimiter {
  private readonly buckets = new Map<number | string, Bucket>();
  private lastFullSweepAt = -Infinity;
  /** An idle bucket is full again after this long: it can go. */
  private readonly idleMs: number;

  constructor(
    private readonly limits: RateLimits,
    private readonly now: () => number,
  ) {
    if (!(limits.perSecond > 0) || !(limits.burst >= 1) || !(limits.maxSources >= 1)) {
      throw new Error(`wireguard rate limits: perSecond > 0, burst >= 1 and maxSources >= 1 are required (got ${JSON.stringify(limits)})`);
    }
    this.idleMs = Math.max(1000, (limits.burst / limits.perSecond) * 1000);
  }

  /** Takes a token for one message from source `ip` (an IPv4 address, or an IPv6 /64 as text); false: over its rate (or no room to track it). */
  allow(ip: number | string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(ip);
    if (!bucket) {
      if (this.buckets.size >= this.limits.maxSources && now - this.lastFullSweepAt >= FULL_SWEEP_INTERVAL_MS) {
        this.lastFullSweepAt = now;
        this.sweep();
      }
      if (this.buckets.size >= this.limits.maxSources) return false;
      this.buckets.set(ip, { tokens: this.limits.burst - 1, at: now });
      return true;
    }
    bucket.tokens = Math.min(this.limits.burst, bucket.tokens + ((now - bucket.at) * this.limits.perSecond) / 1000);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets the buckets that have been idle long enough to be full (called from the sessions' tick). */
  sweep(): void {
    const now = this.now();
    for (const [ip, bucket] of this.buckets) if (now - bucket.at >= this.idleMs) this.buckets.delete(ip);
  }

  get trackedSources(): number {
    return this.buckets.size;
  }
}
