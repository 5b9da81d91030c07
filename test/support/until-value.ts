import { sleep } from "../../src/async/sleep.js";

/**
 * Polls `check` until it gives a value (not undefined) and returns that value; fails naming
 * `what` after `timeoutMs`. For waiting on a daemon's next probe round, a page showing a verdict.
 */
export async function untilValue<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 100): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}
