import { describe, expect, it } from "vitest";
import { formatReportMarkdown, parseBenchReport } from "../../src/bench/bench.js";
import { pathResult, rep, report } from "./report-fixture.js";

describe("bench report JSON read back (--from-json)", () => {
  it("renders the same markdown from a report and from its JSON", () => {
    const original = report([pathResult("vxlan", "weft vxlan", [rep(10, 12, 40)]), pathResult("udp", "weft udp", [rep(5, 6, 80)])]);
    const parsed = parseBenchReport(JSON.stringify(original), "r.json");
    expect(formatReportMarkdown(parsed)).toBe(formatReportMarkdown(original));
    expect(formatReportMarkdown(parsed)).toMatch(/^`weft bench --reps 3` \(2026-12-01\)\n\n\| path \|/);
  });

  it("gives no ratio for the daemons' CPU (kernel vxlan's daemons move no packets)", () => {
    const table = formatReportMarkdown(report([pathResult("vxlan", "weft vxlan", [rep(10, 12, 40)]), pathResult("udp", "weft udp", [rep(5, 6, 80)])]));
    const udpRow = table.split("\n").find((line) => line.startsWith("| weft udp |")) as string;
    const cells = udpRow.split(" | ");
    expect(cells[2]).toBe("5.00 0.50×");
    expect(cells[10]).toBe("0.36"); // 2 × 0.5 s of daemon CPU over 1.25 + 1.5 GB, and no ratio after it
  });

  it.each([
    ["{", /^--from-json r.json: not JSON/],
    ['{"version": 2}', /^--from-json r.json: not a weft bench report \(no "version": 1\)/],
    ['{"version": 1, "results": []}', /^--from-json r.json: a weft bench report needs "settings", "machine" and "results"/],
    ['{"version": 1, "settings": {}, "machine": {}, "results": [{"id": "x"}]}', /^--from-json r.json: results\[0\] needs "id", "label" and "reps"/],
  ])("rejects %s, naming the flag and the file", (text, message) => {
    expect(() => parseBenchReport(text, "r.json")).toThrow(message);
  });
});
