import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { TriggeredPass, type TriggeredPassOptions } from "../../src/async/triggered-pass.js";
import { sleep } from "../../src/async/sleep.js";

/** A pass whose runs are counted; `repair` decides each run's outcome (and may trigger, as a repair's echo does). */
function countedPass(options: Partial<TriggeredPassOptions> & { repair?: (run: number, pass: TriggeredPass) => boolean; runMs?: number } = {}) {
  const messages: string[] = [];
  const logger = pino(new Writable({ write: (chunk: Buffer, _encoding, done) => (messages.push(JSON.parse(chunk.toString()).msg as string), done()) }));
  const runs: number[] = [];
  const started = performance.now();
  const pass: TriggeredPass = new TriggeredPass({
    what: "test pass",
    debounceMs: 20,
    backstopMs: 10_000,
    pollMs: 10_000,
    logger,
    ...options,
    run: async () => {
      runs.push(Math.round(performance.now() - started));
      await sleep(options.runMs ?? 5);
      return options.repair?.(runs.length, pass) ?? false;
    },
  });
  passes.push(pass);
  return { pass, runs, messages };
}
const passes: TriggeredPass[] = [];
afterEach(() => {
  for (const pass of passes.splice(0)) pass.stop();
});

describe("a pass triggered by events", () => {
  it("runs once for a burst of events, after the debounce", async () => {
    const { pass, runs } = countedPass();
    pass.start();
    for (let i = 0; i < 50; i++) pass.trigger();
    await sleep(10);
    expect(runs).toEqual([]);
    await sleep(60);
    expect(runs.length).toBe(1);
    expect(runs[0]).toBeGreaterThanOrEqual(18);
  });

  it("runs once more for events during a pass, and the echo of its repair ends the chain", async () => {
    // Run 1 repairs (its own changes come back as an event); run 2 finds nothing and causes no events.
    const { pass, runs } = countedPass({ runMs: 30, repair: (run, self) => (run === 1 ? (self.trigger(), true) : false) });
    pass.start();
    pass.trigger();
    await sleep(300);
    expect(runs.length).toBe(2);
  });

  it("polls at pollMs while events are not watched, at backstopMs while they are", async () => {
    const unwatched = countedPass({ backstopMs: 5000, pollMs: 40 });
    unwatched.pass.start();
    await sleep(230);
    expect(unwatched.runs.length).toBeGreaterThanOrEqual(3);
    const watched = countedPass({ backstopMs: 5000, pollMs: 40 });
    watched.pass.setWatched(true);
    watched.pass.start();
    await sleep(230);
    expect(watched.runs).toEqual([]);
    // The monitor died: polling starts at once, not at the end of the backstop.
    watched.pass.setWatched(false);
    await sleep(100);
    expect(watched.runs.length).toBeGreaterThanOrEqual(1);
  });

  it("retries at pollMs after a repair (a repair the kernel refused causes no event), then falls back to the backstop", async () => {
    const { pass, runs } = countedPass({ backstopMs: 5000, pollMs: 60, repair: (run) => run === 1 });
    pass.setWatched(true);
    pass.start();
    pass.trigger();
    await sleep(300);
    expect(runs.length).toBe(2);
    expect((runs[1] as number) - (runs[0] as number)).toBeGreaterThanOrEqual(55);
  });

  it("backs off when every pass repairs what something else keeps undoing, and says so once", async () => {
    // Each repair is undone at once (an event): unthrottled, that is a pass every debounce.
    const { pass, runs, messages } = countedPass({
      debounceMs: 5,
      pollMs: 400,
      fight: { burst: 5, windowMs: 2000, calmMs: 60_000 },
      repair: (_run, self) => (setImmediate(() => self.trigger()), true),
    });
    pass.start();
    pass.trigger();
    await sleep(1500);
    // 5 quick passes, then waits of 1 s capped at pollMs (400 ms): a handful more, not hundreds.
    expect(runs.length).toBeGreaterThanOrEqual(6);
    expect(runs.length).toBeLessThanOrEqual(10);
    expect(messages.filter((message) => /something keeps changing it back/.test(message))).toHaveLength(1);
  });

  it("stops: no pass after stop(), whatever was pending", async () => {
    const { pass, runs } = countedPass({ pollMs: 30 });
    pass.start();
    pass.trigger();
    pass.stop();
    await sleep(120);
    expect(runs).toEqual([]);
  });
});
