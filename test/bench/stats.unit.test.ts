import { describe, expect, it } from "vitest";
import { metric, summarizeResults } from "../../src/bench/metrics.js";
import { median, ratioTo, summarize } from "../../src/bench/stats.js";
import { pathResult, rep } from "./report-fixture.js";

describe("bench statistics", () => {
  it.each([
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[], NaN],
  ])("median of %j is %d", (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it("summarizes finite values only: a failed measure is a gap, not a zero", () => {
    expect(summarize([3, undefined, 1, NaN, 2])).toEqual({ median: 2, min: 1, max: 3, count: 3 });
    expect(summarize([undefined, NaN])).toBeUndefined();
  });

  it("takes the ratio of medians, and none against a missing or zero reference", () => {
    expect(ratioTo(summarize([4, 6]), summarize([10]))).toBe(0.5);
    expect(ratioTo(summarize([4]), undefined)).toBeUndefined();
    expect(ratioTo(summarize([4]), summarize([0]))).toBeUndefined();
  });

  it("gives every path its ratio to kernel vxlan of the same run", () => {
    const summaries = summarizeResults([
      pathResult("udp", "weft udp", [rep(1, 2, 100), rep(3, 4, 300), rep(2, 3, 200)]),
      pathResult("vxlan", "weft vxlan", [rep(4, 6, 50)]),
    ]);
    const udp = summaries.get("udp")?.get("tcp1Gbps");
    expect(udp?.summary).toEqual({ median: 2, min: 1, max: 3, count: 3 });
    expect(udp?.ratio).toBe(0.5);
    expect(summaries.get("udp")?.get("idleRttUs")?.ratio).toBe(4);
    expect(summaries.get("vxlan")?.get("tcp4Gbps")?.ratio).toBe(1);
  });

  it("CPU per GB counts both TCP runs, and a path without daemons has no daemon figure", () => {
    // Each run moves gbps * 2 s / 8 GB for 1 s of machine CPU: 2 + 4 Gb/s → 0.5 + 1 GB for 2 s.
    expect(metric("machineCpuPerGB").pick(rep(2, 4, 10))).toBeCloseTo(2 / 1.5);
    const withoutDaemons = rep(2, 4, 10);
    delete withoutDaemons.tcp1?.daemonCpuSeconds;
    delete withoutDaemons.tcp4?.daemonCpuSeconds;
    expect(metric("daemonCpuPerGB").pick(withoutDaemons)).toBeUndefined();
    expect(metric("machineCpuPerGB").pick({ errors: [] })).toBeUndefined();
  });

  it("names the metrics there are when asked for one that is not", () => {
    expect(() => metric("nope")).toThrow(/no bench metric "nope"; metrics are tcp1Gbps, tcp4Gbps/);
  });
});
