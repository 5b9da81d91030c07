import { metric, REFERENCE_PATH, summarizeResults, type Metric } from "./metrics.js";
import type { BenchReport } from "./results.js";
import type { Summary } from "./stats.js";

/**
 * The bench's chart as a standalone SVG, drawn here (no plotting dependency): a throughput and
 * a latency panel, one group of horizontal bars per path, a bar per series at its median with a
 * min–max whisker, and kernel vxlan's median of each series as a dashed reference line.
 */

interface Panel {
  title: string;
  /** Latency spans 20 µs to several ms between paths: on a linear axis the kernel rows vanish. */
  axis: "linear" | "log";
  /** Bar colour and a darker one for the series' kernel-vxlan reference line (visible over the bars). */
  series: { metric: Metric; color: string; reference: string }[];
}

const PANELS: readonly Panel[] = [
  { title: "TCP throughput, Gb/s (higher is better)", axis: "linear", series: [
    { metric: metric("tcp1Gbps"), color: "#4c78a8", reference: "#1f3d5c" },
    { metric: metric("tcp4Gbps"), color: "#9ecae9", reference: "#2f6f9f" },
  ] },
  { title: "Latency, µs, log scale (lower is better)", axis: "log", series: [
    { metric: metric("idleRttUs"), color: "#e45756", reference: "#7a1f1e" },
    { metric: metric("loadedRttUs"), color: "#ff9d98", reference: "#b8463f" },
  ] },
];

const WIDTH = 920;
const LABEL_WIDTH = 190;
const RIGHT_MARGIN = 90;
const BAR_HEIGHT = 12;
const BAR_GAP = 2;
const GROUP_GAP = 10;
const PANEL_HEADER = 44;
const AXIS_HEIGHT = 26;
const PANEL_GAP = 24;

export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A round axis maximum at or above `value` (1, 2 or 5 times a power of ten) and its tick step. */
export function niceScale(value: number): { max: number; step: number } {
  if (!(value > 0)) return { max: 1, step: 0.2 };
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    const max = factor * magnitude;
    if (max >= value) return { max, step: max / 5 };
  }
  return { max: 10 * magnitude, step: 2 * magnitude };
}

/** A logarithmic axis from the power of ten at or below `low` to the one at or above `high`; ticks at 1, 2, 5 × 10^k. */
export function logScale(low: number, high: number): { min: number; max: number; ticks: number[] } {
  const min = 10 ** Math.floor(Math.log10(low > 0 ? low : 1));
  const max = Math.max(min * 10, 10 ** Math.ceil(Math.log10(high > 0 ? high : 1)));
  const ticks: number[] = [];
  for (let decade = min; decade < max; decade *= 10) for (const factor of [1, 2, 5]) ticks.push(decade * factor);
  ticks.push(max);
  return { min, max, ticks };
}

/** Where a value lands on a panel's axis, 0 … 1 of the plot width (clamped). */
export function axisPosition(axis: Panel["axis"], value: number, range: { min: number; max: number }): number {
  if (axis === "log") {
    const clamped = Math.min(Math.max(value, range.min), range.max);
    return Math.log10(clamped / range.min) / Math.log10(range.max / range.min);
  }
  return Math.min(Math.max(value, 0), range.max) / range.max;
}

function number(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 0);
}

/** Coordinates rounded to 0.1 px keep the file small and diffs readable. */
function px(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

export function renderSvg(report: BenchReport): string {
  const summaries = summarizeResults(report.results);
  const paths = report.results.filter((result) => result.error === undefined);
  const plotWidth = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
  const parts: string[] = [];
  let y = 0;

  const title = `weft bench: ${report.settings.cpu} CPUs${report.settings.link ? `, link ${report.settings.link}` : ""}, ` +
    `median of ${report.settings.reps} × ${report.settings.duration} s, whiskers min–max, dashed: kernel vxlan`;
  parts.push(`<text x="10" y="20" class="title">${escapeXml(title)}</text>`);
  y = 34;

  for (const panel of PANELS) {
    const groupHeight = panel.series.length * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP;
    const top = y + PANEL_HEADER;
    const found = paths.flatMap((result) => panel.series.map((s) => summaries.get(result.id)?.get(s.metric.key)?.summary)).filter((summary): summary is Summary => summary !== undefined);
    const high = Math.max(0, ...found.map((summary) => summary.max));
    const linear = niceScale(high);
    const log = logScale(Math.min(...found.map((summary) => summary.min), high), high);
    const range = panel.axis === "log" ? log : { min: 0, max: linear.max };
    const ticks = panel.axis === "log" ? log.ticks : Array.from({ length: Math.round(linear.max / linear.step) + 1 }, (_, i) => i * linear.step);
    const x = (value: number) => LABEL_WIDTH + axisPosition(panel.axis, value, range) * plotWidth;
    const bottom = top + paths.length * groupHeight;

    parts.push(`<text x="10" y="${px(y + 18)}" class="panel">${escapeXml(panel.title)}</text>`);
    panel.series.forEach((s, index) => {
      const legendX = LABEL_WIDTH + index * 200;
      parts.push(`<rect x="${legendX}" y="${px(y + 26)}" width="10" height="10" fill="${s.color}"/>`);
      parts.push(`<text x="${legendX + 14}" y="${px(y + 35)}" class="legend">${escapeXml(s.metric.label)}</text>`);
    });
    for (const tick of ticks) {
      parts.push(`<line x1="${px(x(tick))}" y1="${px(top - 4)}" x2="${px(x(tick))}" y2="${px(bottom)}" class="grid"/>`);
      parts.push(`<text x="${px(x(tick))}" y="${px(bottom + 16)}" class="tick">${number(Math.round(tick * 1000) / 1000)}</text>`);
    }

    paths.forEach((result, row) => {
      const groupTop = top + row * groupHeight;
      const labelY = groupTop + (panel.series.length * (BAR_HEIGHT + BAR_GAP)) / 2 + 4;
      parts.push(`<text x="${LABEL_WIDTH - 8}" y="${px(labelY)}" class="label">${escapeXml(result.label)}</text>`);
      panel.series.forEach((s, index) => {
        const summary: Summary | undefined = summaries.get(result.id)?.get(s.metric.key)?.summary;
        const barTop = groupTop + index * (BAR_HEIGHT + BAR_GAP);
        if (!summary) {
          parts.push(`<text x="${LABEL_WIDTH + 4}" y="${px(barTop + BAR_HEIGHT - 2)}" class="value">no value</text>`);
          return;
        }
        const middle = barTop + BAR_HEIGHT / 2;
        parts.push(`<rect x="${LABEL_WIDTH}" y="${px(barTop)}" width="${px(Math.max(1, x(summary.median) - LABEL_WIDTH))}" height="${BAR_HEIGHT}" fill="${s.color}" class="bar" data-path="${escapeXml(result.id)}" data-metric="${s.metric.key}"/>`);
        parts.push(`<line x1="${px(x(summary.min))}" y1="${px(middle)}" x2="${px(x(summary.max))}" y2="${px(middle)}" class="whisker"/>`);
        for (const end of [summary.min, summary.max]) {
          parts.push(`<line x1="${px(x(end))}" y1="${px(middle - 4)}" x2="${px(x(end))}" y2="${px(middle + 4)}" class="whisker"/>`);
        }
        parts.push(`<text x="${px(x(summary.max) + 6)}" y="${px(barTop + BAR_HEIGHT - 2)}" class="value">${summary.median.toFixed(s.metric.digits)}</text>`);
      });
    });

    panel.series.forEach((s) => {
      const reference = summaries.get(REFERENCE_PATH)?.get(s.metric.key)?.summary;
      if (!reference) return;
      parts.push(`<line x1="${px(x(reference.median))}" y1="${px(top - 4)}" x2="${px(x(reference.median))}" y2="${px(bottom)}" stroke="${s.reference}" class="reference" data-metric="${s.metric.key}"/>`);
    });
    y = bottom + AXIS_HEIGHT + PANEL_GAP;
  }

  const height = Math.ceil(y);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    "<style>",
    ".title{font-size:14px;font-weight:bold}.panel{font-size:13px;font-weight:bold}.legend,.tick,.value{font-size:11px}",
    ".label{font-size:12px;text-anchor:end}.tick{text-anchor:middle;fill:#555}.grid{stroke:#ddd;stroke-width:1}",
    ".whisker{stroke:#222;stroke-width:1.2}.reference{stroke-width:1.5;stroke-dasharray:5 3}",
    "</style>",
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}
