import { sleep } from "./sleep.js";

/** Exponential back-off: waits that double from `initialMs` up to `maxMs`, until reset. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.nextMs = initialMs;
  }

  /** The wait the next call to `next()` returns. */
  peek(): number {
    return this.nextMs;
  }

  /** The wait before the next attempt; the one after it is twice as long, up to the maximum. */
  next(): number {
    const delayMs = this.nextMs;
    this.nextMs = Math.min(delayMs * 2, this.maxMs);
    return delayMs;
  }

  /** After a success: start again from the initial wait. */
  reset(): void {
    this.nextMs = this.initialMs;
  }
}

export interface RetryOptions {
  initialMs: number;
  maxMs: number;
  /** Ends the retries: the pending wait ends at once and `signal.reason` is thrown. */
  signal: AbortSignal;
  /** Each failure, with the wait before the next attempt (for the log and the metrics). */
  onFailure: (error: unknown, retryInMs: number) => void;
  /**
   * Ends a wait early: called with each failure, its promise resolving retries at once (e.g. a
   * freed subnet seen on a watch). Undefined (or a promise that never resolves): the full wait.
   */
  wakeEarly?: (error: unknown, signal: AbortSignal) => Promise<void> | undefined;
}

/** Runs `work` until it succeeds, backing off between failures; throws `signal.reason` once aborted. */
export async function retryWithBackoff<T>(work: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { signal } = options;
  const backoff = new Backoff(options.initialMs, options.maxMs);
  for (;;) {
    signal.throwIfAborted();
    try {
      return await work();
    } catch (error) {
      const delayMs = backoff.next();
      options.onFailure(error, delayMs);
      const waitEnded = new AbortController();
      const woken = options.wakeEarly?.(error, AbortSignal.any([signal, waitEnded.signal]));
      try {
        await Promise.race([sleep(delayMs, signal), ...(woken ? [woken.catch(() => new Promise<never>(() => undefined))] : [])]);
      } finally {
        waitEnded.abort();
      }
    }
  }
}
