import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parseBenchReport } from "../../src/bench/bench.js";
import { formatTargets, judgeTargets } from "../../src/bench/targets.js";

async function savedRun(file: string) {
  const path = new URL(`../../docs/${file}`, import.meta.url);
  return parseBenchReport(await readFile(path, "utf8"), file);
}

describe("the userspace data path targets of a bench run", () => {
  it("judges each target from the run's own ratios to kernel vxlan and absolute bounds", async () => {
    const report = await savedRun("bench.json");
    const verdicts = judgeTargets(report);
    const find = (path: string, what: RegExp) => verdicts.find((verdict) => verdict.path === path && what.test(verdict.what));
    // The README's --cpu shared table: udp idle RTT 4.99× (missed), userspace vxlan RR 0.53× (met).
    expect(find("weft udp", /idle RTT/)?.value).toBeCloseTo(4.99, 1);
    expect(find("weft udp", /idle RTT/)?.met).toBe(false);
    expect(find("weft userspace vxlan", /request\/response/)?.value).toBeCloseTo(0.53, 1);
    expect(find("weft userspace vxlan", /request\/response/)?.met).toBe(true);
    expect(find("weft udp", /RSS/)?.value).toBeCloseTo(68, 0);
    // No --link in this run: the shaped-link target is not judged.
    expect(verdicts.some((verdict) => /shaped link/.test(verdict.what))).toBe(false);
    expect(verdicts).toHaveLength(2 * 6);
    expect(formatTargets(report)).toMatch(/- weft udp: idle RTT ≤ 3× kernel vxlan — 4\.99×: missed/);
  });

  it("judges the shaped-link target only with --link, and says when kernel vxlan is missing", async () => {
    const report = await savedRun("bench-10gbit.json");
    expect(judgeTargets(report).filter((verdict) => /shaped link/.test(verdict.what))).toHaveLength(2);
    expect(judgeTargets(report).some((verdict) => /TCP 1 stream ≥ 0\.5×/.test(verdict.what))).toBe(false);
    const withoutKernel = { ...report, results: report.results.filter((result) => result.id !== "vxlan") };
    expect(formatTargets(withoutKernel)).toMatch(/idle RTT ≤ 3× kernel vxlan — kernel vxlan not measured/);
    const withoutUserspace = { ...report, results: report.results.filter((result) => !["udp", "userspace-vxlan", "wireguard", "wireguard-go"].includes(result.id)) };
    expect(formatTargets(withoutUserspace)).toBe("");
  });
});
