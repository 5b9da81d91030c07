import { describe, expect, it } from "vitest";
import { formatCell, formatMarkdownTable, formatTableFooter } from "../../src/bench/table.js";
import { pathResult, rep, report } from "./report-fixture.js";

describe("bench markdown table", () => {
  const run = report([
    pathResult("host", "host (underlay)", [rep(20, 22, 30), rep(18, 21, 32), rep(19, 20, 31)], { daemons: "", mtu: 1500 }),
    pathResult("vxlan", "weft vxlan (kernel)", [rep(10, 12, 40), rep(9, 11, 44), rep(11, 13, 42)]),
    pathResult("docker-overlay", "Docker overlay | swarm", [], { error: "swarm init failed" }),
  ]);
  const lines = formatMarkdownTable(run).split("\n");

  it("has a header, an alignment row and one row per path", () => {
    expect(lines).toHaveLength(2 + 3);
    expect(lines[0]).toMatch(/^\| path \| MTU \| TCP 1 stream Gb\/s \| TCP 4 streams Gb\/s \| idle RTT µs \|/);
    expect(lines[1]).toBe(`|---|---|${Array(10).fill("---:").join("|")}|`);
    for (const line of lines) expect(line.split(/(?<!\\)\|/).length - 2).toBe(12); // Cells between the outer pipes.
  });

  it("writes median [min–max] and the ratio to kernel vxlan; the reference row has no ratio", () => {
    expect(lines[2]).toContain("| 19.00 [18.00–20.00] 1.90× |");
    expect(lines[2]).toContain("| 31 [30–32] 0.74× |");
    expect(lines[3]).toContain("| 10.00 [9.00–11.00] |");
    expect(lines[3]).not.toMatch(/×/);
  });

  it("shows a failed path with its reason, pipes escaped", () => {
    expect(lines[4]).toMatch(/^\| Docker overlay \\\| swarm \|  \| failed: swarm init failed \|/);
  });

  it("formats one rep without a range and a missing figure as a dash", () => {
    expect(formatCell({ digits: 1 }, { summary: { median: 2, min: 2, max: 2, count: 1 }, ratio: 0.5 }, false)).toBe("2.0 0.50×");
    expect(formatCell({ digits: 1 }, { summary: undefined }, false)).toBe("–");
  });

  it("says in the footer how it was measured, and lists measures that failed", () => {
    const failing = report([pathResult("udp", "weft udp", [rep(1, 2, 3, { errors: ["TCP RR: sockperf missing"] })])], { cpu: "pinned", link: "10gbit", reps: 1 });
    const footer = formatTableFooter(failing);
    expect(footer).toMatch(/median \[min–max\] of 1 rep, 5 s per measure/);
    expect(footer).toContain("(kernel vxlan was not measured: no ratios)");
    expect(footer).toContain("--cpu pinned, --link 10gbit");
    expect(footer).toContain("- weft udp rep 1: TCP RR: sockperf missing");
  });

  it("lists what the tools cannot measure apart from failures, once per path", () => {
    const limited = { errors: [], notMeasured: ["TCP RR: sockperf cannot use the IPv6 address fd66::2"] };
    const footer = formatTableFooter(report([pathResult("vxlan-v6", "weft vxlan, IPv6", [rep(1, 2, 3, limited), rep(1, 2, 3, limited)])], { reps: 2 }));
    expect(footer).not.toContain("measures that failed");
    expect(footer.match(/- weft vxlan, IPv6: TCP RR: sockperf cannot use the IPv6 address fd66::2/g)).toHaveLength(1);
  });
});
