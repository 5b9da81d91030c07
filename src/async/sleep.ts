/**
 * Waits `ms`; with a signal, ends early when it is aborted (resolving, not rejecting: the caller
 * checks `signal.aborted` where it decides whether to go on), so shutdown never waits out a back-off.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
