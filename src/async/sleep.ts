/**
 * Waits `ms`; with a signal, ends early when it is aborted (resolving, not rejecting: the caller
 * checks `signal.aborted` where it decides whether to go on), so shutdown never waits out a back-off.
 * `unref`: the wait alone does not keep the process alive (a renewal hours away, say).
 */
export function sleep(ms: number, signal?: AbortSignal, options: { unref?: boolean } = {}): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (options.unref) timer.unref();
    signal?.addEventListener("abort", done, { once: true });
  });
}
