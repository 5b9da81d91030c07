/**
 * The engine's per-source token bucket for handshake messages (native/src/wireguard.c,
 * wg_limiter_take), on its own: the addon's wgRateLimitTrace runs a fresh one over (source, time)
 * steps with the test's clock. Needs the addon, not root. What the engine does with it (drop only
 * while its queue is loaded) is handshake-admission.test.ts's.
 */
import { describe, expect, it } from "vitest";
import { loadNativeAddon, type NativeAddon } from "../../../src/engine/native-addon.js";

/** 20 per second, a burst of 5, 256 sets of 4 entries (wireguard.h WG_LIMIT_*). */
const PER_SECOND = 20;
const BURST = 5;
const COST_MS = 1000 / PER_SECOND;
const ENTRIES = 256 * 4;

type Source = number | Buffer;
type Step = readonly [source: Source, atMs: number];
interface Trace {
  allowed: boolean[];
  /** Entries whose bucket had not refilled at the last step's time. */
  tracked: number;
  /** Sources forgotten before their bucket refilled (the table was full). */
  evictions: number;
}
interface RateLimitProbe {
  wgRateLimitTrace(steps: readonly Step[]): Trace;
}

function hasProbe(addon: NativeAddon): addon is NativeAddon & RateLimitProbe {
  return "wgRateLimitTrace" in addon && typeof addon.wgRateLimitTrace === "function";
}

function trace(steps: readonly Step[]): Trace {
  const addon = loadNativeAddon();
  if (!hasProbe(addon)) throw new Error("the addon has no wgRateLimitTrace: rebuild it with npm run build:native");
  return addon.wgRateLimitTrace(steps);
}

const ipv4 = (text: string) => text.split(".").reduce((n, part) => n * 256 + Number(part), 0);
/** An IPv6 address from its eight groups. */
const ipv6 = (...groups: number[]) => {
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, 2 * i));
  return bytes;
};
const allowedCount = (result: Trace) => result.allowed.filter(Boolean).length;
const at = (source: Source, times: readonly number[]): Step[] => times.map((ms) => [source, ms] as const);

describe("handshake admission: the per-source token bucket", () => {
  const peer = ipv4("192.168.90.2");

  it("gives a new source a burst of 5, then one message per 50 ms", () => {
    const result = trace([
      ...at(peer, [0, 0, 0, 0, 0, 0]), // the burst, and one over it
      ...at(peer, [49]), // 49 ms of credit: not yet
      ...at(peer, [50, 50]), // one message's worth, once
      ...at(peer, [400, 400, 400, 400, 400, 400]), // idle past 250 ms: the burst again, capped at 5
    ]);
    expect(result.allowed).toEqual([true, true, true, true, true, false, false, true, false, true, true, true, true, true, false]);
  });

  it("holds a flood to the rate: 1000 messages over a second get the burst plus 20 per second", () => {
    const result = trace(at(peer, Array.from({ length: 1000 }, (_, i) => i)));
    // 250 ms of credit to start with, 999 ms earned: floor(1249 / 50).
    expect(allowedCount(result)).toBe(Math.floor((BURST * COST_MS + 999) / COST_MS));
  });

  it("never limits a peer at handshake rates: retries every 5 s, or a burst of 5 (a rotation, a restart) every second", () => {
    expect(trace(at(peer, Array.from({ length: 40 }, (_, i) => i * 5000))).allowed.every(Boolean)).toBe(true);
    const bursts = Array.from({ length: 10 }, (_, second) => Array.from({ length: BURST }, () => second * 1000)).flat();
    expect(trace(at(peer, bursts)).allowed.every(Boolean)).toBe(true);
  });

  it("keys IPv4 sources by address and IPv6 ones by /64, the families apart", () => {
    const a = ipv6(0xfd70, 0x90, 0, 3, 0, 0, 0, 1);
    const sameSlash64 = ipv6(0xfd70, 0x90, 0, 3, 0xdead, 0xbeef, 0, 0xffff);
    const otherSlash64 = ipv6(0xfd70, 0x90, 0, 4, 0, 0, 0, 1);
    // IPv6 ::102:304/64 has the same 64-bit key as IPv4 1.2.3.4: still its own bucket.
    const lookalike = ipv6(0, 0, 0x0102, 0x0304, 0, 0, 0, 1);
    const result = trace([
      ...at(a, [0, 0, 0]),
      ...at(sameSlash64, [0, 0, 0]), // the /64's 4th and 5th message, then over
      ...at(otherSlash64, [0, 0, 0, 0, 0]),
      ...at(ipv4("1.2.3.4"), [0, 0, 0, 0, 0, 0]),
      ...at(ipv4("1.2.3.5"), [0]),
      ...at(lookalike, [0]),
    ]);
    expect(result.allowed).toEqual([
      true, true, true,
      true, true, false,
      true, true, true, true, true,
      true, true, true, true, true, false,
      true,
      true,
    ]);
  });

  it("forgets a source once its bucket refilled: nothing stays tracked", () => {
    const strangers = Array.from({ length: 500 }, (_, i) => ipv4(`10.1.${i >> 8}.${i & 255}`));
    const busy = trace(strangers.map((source) => [source, 0] as const));
    expect(busy.tracked).toBeGreaterThan(400);
    const later = trace([...strangers.map((source) => [source, 0] as const), [peer, BURST * COST_MS]]);
    expect(later.tracked).toBe(1);
  });

  it("stays bounded when full: the least recently seen source is evicted and starts again with a full bucket", () => {
    const flooder = ipv4("192.168.90.3");
    const strangers = Array.from({ length: 5000 }, (_, i) => [ipv4(`10.2.${i >> 8}.${i & 255}`), 1 + i / 100] as const);
    const result = trace([...at(flooder, [0, 0, 0, 0, 0, 0]), ...strangers, [flooder, 60], [peer, 60]]);
    expect(result.tracked).toBeLessThanOrEqual(ENTRIES);
    expect(result.evictions).toBeGreaterThan(5000 - ENTRIES);
    expect(result.allowed.slice(0, 6)).toEqual([true, true, true, true, true, false]);
    // The flooder's entry was evicted (only 10 ms of credit otherwise): a full bucket again. A
    // table full of strangers never costs anyone a message, it only loosens the limit.
    expect(result.allowed.at(-2)).toBe(true);
    expect(result.allowed.at(-1)).toBe(true);
  });

  it("reuses refilled entries without evicting: a second wave after the first's buckets refilled evicts only what it would alone", () => {
    const wave = (stem: number) => Array.from({ length: 900 }, (_, i) => ipv4(`10.${stem}.${i >> 8}.${i & 255}`));
    const first = wave(3).map((source) => [source, 0] as const);
    const second = (ms: number) => wave(4).map((source) => [source, ms] as const);
    const alone = trace(second(1000)).evictions;
    const firstAlone = trace(first).evictions;
    expect(trace([...first, ...second(1000)]).evictions).toBe(firstAlone + alone);
    // One message each: refilled 50 ms later. Before that, the second wave evicts the first.
    expect(trace([...first, ...second(10)]).evictions).toBeGreaterThan(firstAlone + alone);
  });
});
