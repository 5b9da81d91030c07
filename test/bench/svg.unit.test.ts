import { describe, expect, it } from "vitest";
import { axisPosition, escapeXml, logScale, niceScale, renderSvg } from "../../src/bench/svg.js";
import { pathResult, rep, report } from "./report-fixture.js";

/** Every tag closed in order: the chart is well-formed XML (no parser dependency needed for that). */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = match as unknown as [string, string, string, string, string];
    if (selfClosing) continue;
    if (closing) expect(stack.pop()).toBe(name);
    else stack.push(name as string);
  }
  expect(stack).toEqual([]);
  expect(svg.replace(/<[^>]*>/g, "")).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;)/);
}

function attributes(svg: string, selector: RegExp): Record<string, string>[] {
  return [...svg.matchAll(selector)].map((match) =>
    Object.fromEntries([...(match[0] as string).matchAll(/([a-z0-9-]+)="([^"]*)"/g)].map((a) => [a[1] as string, a[2] as string])),
  );
}

describe("bench SVG chart", () => {
  const run = report([
    pathResult("host", "host <underlay> & co", [rep(20, 22, 30), rep(18, 21, 32), rep(19, 20, 31)]),
    pathResult("vxlan", "weft vxlan (kernel)", [rep(10, 12, 40), rep(9, 11, 44), rep(11, 13, 42)]),
    pathResult("udp", "weft udp", [], { error: "lab failed" }),
  ]);
  const svg = renderSvg(run);

  it("is a standalone, well-formed SVG with labels escaped", () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    assertWellFormed(svg);
    expect(svg).toContain("host &lt;underlay&gt; &amp; co");
    expect(escapeXml(`a"<&>`)).toBe("a&quot;&lt;&amp;&gt;");
  });

  it("draws a bar per measured path and series, none for a failed path", () => {
    const bars = attributes(svg, /<rect [^>]*class="bar"[^>]*>/g);
    expect(bars.map((bar) => `${bar["data-path"]}:${bar["data-metric"]}`)).toEqual([
      "host:tcp1Gbps", "host:tcp4Gbps", "vxlan:tcp1Gbps", "vxlan:tcp4Gbps",
      "host:idleRttUs", "host:loadedRttUs", "vxlan:idleRttUs", "vxlan:loadedRttUs",
    ]);
    expect(svg).not.toContain("weft udp");
  });

  it("scales bars to their medians and whiskers to min and max on the same axis", () => {
    const [hostTcp1, , vxlanTcp1] = attributes(svg, /<rect [^>]*class="bar"[^>]*>/g);
    // Throughput axis: 0..25 Gb/s (max 22), so widths are proportional to the medians 19 and 10.
    expect(Number(hostTcp1?.width) / Number(vxlanTcp1?.width)).toBeCloseTo(19 / 10, 1);
    const whiskers = attributes(svg, /<line [^>]*class="whisker"[^>]*>/g);
    const left = 190;
    const plot = 920 - 190 - 90;
    const hostRange = whiskers[0] as Record<string, string>;
    expect(Number(hostRange.x1)).toBeCloseTo(left + (18 / 25) * plot, 0);
    expect(Number(hostRange.x2)).toBeCloseTo(left + (20 / 25) * plot, 0);
  });

  it("draws kernel vxlan's median of each series as a dashed reference line", () => {
    const references = attributes(svg, /<line [^>]*class="reference"[^>]*>/g);
    expect(references.map((line) => line["data-metric"])).toEqual(["tcp1Gbps", "tcp4Gbps", "idleRttUs", "loadedRttUs"]);
    expect(Number(references[0]?.x1)).toBeCloseTo(190 + (10 / 25) * 640, 0);
    const withoutReference = renderSvg(report([pathResult("host", "host", [rep(1, 2, 3)])]));
    expect(withoutReference).not.toContain('class="reference"');
    assertWellFormed(withoutReference);
  });

  it.each([
    [22, 25],
    [0.8, 1],
    [130, 200],
    [4000, 5000],
    [0, 1],
  ])("rounds an axis maximum of %d up to %d", (value, max) => {
    expect(niceScale(value).max).toBe(max);
  });
});

describe("bench SVG log axis (latency)", () => {
  it("spans whole decades with ticks at 1, 2 and 5", () => {
    expect(logScale(20, 7033)).toEqual({ min: 10, max: 10000, ticks: [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] });
    expect(logScale(30, 30).max).toBe(100);
  });

  it("places values by their logarithm, clamped to the axis", () => {
    const range = { min: 10, max: 10000 };
    expect(axisPosition("log", 100, range)).toBeCloseTo(1 / 3);
    expect(axisPosition("log", 1, range)).toBe(0);
    expect(axisPosition("linear", 5, { min: 0, max: 20 })).toBe(0.25);
    expect(axisPosition("linear", 30, { min: 0, max: 20 })).toBe(1);
  });
});
