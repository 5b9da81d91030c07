import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parseBenchReport } from "../../src/bench/bench.js";
import { BUILTIN_PATHS } from "../../src/bench/paths.js";
import { formatTargets, judgeWireguardTargets } from "../../src/bench/targets.js";
import { pathResult, rep, report } from "./report-fixture.js";

/** Issue 12's targets: weft's userspace WireGuard ≥ 3× Debian's wireguard-go and ≥ 0.5× weft udp, single stream, same run. */
const wireguard = (tcp1: number) => pathResult("wireguard", "weft wireguard (userspace)", [rep(tcp1, tcp1, 80), rep(tcp1 + 0.2, tcp1, 80), rep(tcp1 - 0.2, tcp1, 80)]);
const wireguardGo = (tcp1: number) => pathResult("wireguard-go", "Debian's wireguard-go, configured by weft", [rep(tcp1, tcp1, 90), rep(tcp1, tcp1, 90), rep(tcp1, tcp1, 90)]);
const udp = (tcp1: number) => pathResult("udp", "weft udp", [rep(tcp1, tcp1, 60), rep(tcp1, tcp1, 60), rep(tcp1, tcp1, 60)]);

describe("the wireguard targets of a bench run", () => {
  it("judges both ratios from the medians of the same run", () => {
    const verdicts = judgeWireguardTargets(report([wireguard(3), wireguardGo(0.8), udp(5)]));
    expect(verdicts).toEqual([
      { path: "weft wireguard (userspace)", what: "TCP 1 stream ≥ 3× Debian's wireguard-go", value: 3.75, met: true },
      { path: "weft wireguard (userspace)", what: "TCP 1 stream ≥ 0.5× weft udp", value: 0.6, met: true },
    ]);
  });

  it("says missed below a bound, and prints both under their own heading", () => {
    const text = formatTargets(report([wireguard(2), wireguardGo(1), udp(5)]));
    expect(text).toContain("wireguard targets (this run, docs/wireguard.md):");
    expect(text).toContain("- weft wireguard (userspace): TCP 1 stream ≥ 3× Debian's wireguard-go — 2.00×: missed");
    expect(text).toContain("- weft wireguard (userspace): TCP 1 stream ≥ 0.5× weft udp — 0.40×: missed");
  });

  it("judges a target only when both of its rows were measured without error", () => {
    expect(judgeWireguardTargets(report([wireguard(3), udp(5)])).map((verdict) => verdict.what)).toEqual(["TCP 1 stream ≥ 0.5× weft udp"]);
    expect(judgeWireguardTargets(report([wireguard(3)]))).toEqual([]);
    expect(judgeWireguardTargets(report([wireguardGo(1), udp(5)]))).toEqual([]);
    const failed = { ...wireguardGo(1), error: "lab up failed" };
    expect(judgeWireguardTargets(report([wireguard(3), failed])).length).toBe(0);
    // The udp row alone still gets issue 10's targets, and no wireguard heading.
    expect(formatTargets(report([udp(5)]))).not.toContain("wireguard targets");
  });

  it("has the wireguard-go row: Debian's wireguard-go configured by weft, its processes counted as daemons", () => {
    const path = BUILTIN_PATHS.find((candidate) => candidate.id === "wireguard-go");
    expect(path?.label).toBe("Debian's wireguard-go, configured by weft");
    expect(path?.daemons).toBe("weft + wireguard-go");
    expect(path?.lab.networkConfig).toMatchObject({ Backend: { Type: "wireguard", Implementation: "wireguard-go" } });
    expect(BUILTIN_PATHS.find((candidate) => candidate.id === "wireguard")?.lab.networkConfig).toMatchObject({ Backend: { Type: "wireguard", Implementation: "userspace" } });
  });

  it("judges the saved run (docs/bench.json, both rows measured): 5.37× wireguard-go met, 0.27× udp missed", async () => {
    const saved = parseBenchReport(await readFile(new URL("../../docs/bench.json", import.meta.url), "utf8"), "bench.json");
    const verdicts = judgeWireguardTargets(saved);
    expect(verdicts.map((verdict) => [verdict.what, verdict.met])).toEqual([
      ["TCP 1 stream ≥ 3× Debian's wireguard-go", true],
      ["TCP 1 stream ≥ 0.5× weft udp", false],
    ]);
    expect(verdicts[0]?.value).toBeCloseTo(5.37, 1);
    expect(verdicts[1]?.value).toBeCloseTo(0.27, 1);
  });
});
