/*
 * The wait helpers of src/lab/readiness.ts, without any namespace (no picture: no topology).
 */
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../src/lab/readiness.js";

describe("waitUntil", () => {
  it("returns as soon as the condition holds, sync or async", async () => {
    let polls = 0;
    await waitUntil("the third poll", () => ++polls === 3, { intervalMs: 1 });
    expect(polls).toBe(3);
    await waitUntil("an async yes", async () => true);
  });

  it("fails after the timeout, naming what it waited for", async () => {
    await expect(waitUntil("a port that never opens", () => false, { timeoutMs: 50, intervalMs: 5 }))
      .rejects.toThrow("waited 50 ms for a port that never opens; it did not happen");
  });
});
