import { describe, expect, it } from "vitest";
import { Backoff, retryWithBackoff } from "../../src/async/backoff.js";

describe("Backoff", () => {
  it.each([
    [1000, 30_000, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]],
    [500, 30_000, [500, 1000, 2000, 4000, 8000, 16_000, 30_000]],
    [100, 5000, [100, 200, 400, 800, 1600, 3200, 5000]],
  ])("from %i ms to %i ms", (initialMs, maxMs, expected) => {
    const backoff = new Backoff(initialMs, maxMs);
    expect(expected.map(() => backoff.next())).toEqual(expected);
    backoff.reset();
    expect(backoff.peek()).toBe(initialMs);
  });
});

describe("retryWithBackoff", () => {
  it("retries until the work succeeds, reporting each failure with the wait before the next try", async () => {
    let attempts = 0;
    const failures: number[] = [];
    const result = await retryWithBackoff(
      async () => {
        if (++attempts < 3) throw new Error(`attempt ${attempts}`);
        return "done";
      },
      { initialMs: 1, maxMs: 4, signal: new AbortController().signal, onFailure: (_error, retryInMs) => failures.push(retryInMs) },
    );
    expect(result).toBe("done");
    expect(failures).toEqual([1, 2]);
  });

  it("wakeEarly ends a 30 s wait when its promise resolves, and its signal ends with the wait", async () => {
    let attempts = 0;
    const wakeSignals: AbortSignal[] = [];
    const started = Date.now();
    const result = await retryWithBackoff(
      async () => {
        if (++attempts < 2) throw new Error("full");
        return "leased";
      },
      {
        initialMs: 30_000,
        maxMs: 30_000,
        signal: new AbortController().signal,
        onFailure: () => undefined,
        wakeEarly: (_error, signal) => {
          wakeSignals.push(signal);
          return new Promise((resolve) => setTimeout(resolve, 20));
        },
      },
    );
    expect(result).toBe("leased");
    expect(Date.now() - started).toBeLessThan(5000);
    expect(wakeSignals.map((signal) => signal.aborted)).toEqual([true]);
  });

  it("a wakeEarly that fails leaves the back-off's own wait in charge", async () => {
    let attempts = 0;
    const started = Date.now();
    await retryWithBackoff(
      async () => {
        if (++attempts < 2) throw new Error("full");
      },
      { initialMs: 50, maxMs: 50, signal: new AbortController().signal, onFailure: () => undefined, wakeEarly: () => Promise.reject(new Error("etcd down")) },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });

  it("an abort during a 30 s back-off ends it at once with the signal's reason", async () => {
    const stop = new AbortController();
    const reason = new Error("stop requested");
    const waiting = retryWithBackoff(() => Promise.reject(new Error("etcd is down")), {
      initialMs: 30_000,
      maxMs: 30_000,
      signal: stop.signal,
      onFailure: () => setImmediate(() => stop.abort(reason)),
    });
    const started = performance.now();
    await expect(waiting).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(100);
  });
});
