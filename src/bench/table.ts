import { METRICS, REFERENCE_PATH, summarizeResults, type Metric, type MetricSummary } from "./metrics.js";
import type { BenchReport } from "./results.js";

/**
 * The markdown table of a bench run: one row per path, one column per metric, each cell
 * "median [min–max] ratio×" (ratio to kernel vxlan of the same run), and a footer saying how
 * it was measured.
 */

function fixed(value: number, digits: number): string {
  return value.toFixed(digits);
}

/** "9.41 [9.02–9.77] 1.03×"; "–" when the metric has no value. */
export function formatCell(m: Pick<Metric, "digits">, cell: MetricSummary | undefined, isReference: boolean): string {
  const summary = cell?.summary;
  if (!summary) return "–";
  const range = summary.count > 1 ? ` [${fixed(summary.min, m.digits)}–${fixed(summary.max, m.digits)}]` : "";
  const ratio = isReference || cell.ratio === undefined ? "" : ` ${cell.ratio.toFixed(2)}×`;
  return `${fixed(summary.median, m.digits)}${range}${ratio}`;
}

/** A markdown cell: pipes would end the cell, newlines the row. */
function escapeCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");
}

export function formatMarkdownTable(report: BenchReport): string {
  const summaries = summarizeResults(report.results);
  const header = ["path", "MTU", ...METRICS.map((m) => m.label)];
  const rows = report.results.map((result) => {
    if (result.error !== undefined) return [result.label, "", `failed: ${result.error}`, ...METRICS.slice(1).map(() => "")];
    const cells = summaries.get(result.id);
    return [
      result.label,
      result.mtu === undefined ? "" : String(result.mtu),
      ...METRICS.map((m) => formatCell(m, cells?.get(m.key), result.id === REFERENCE_PATH)),
    ];
  });
  const lines = [header, ...rows].map((cells) => `| ${cells.map(escapeCell).join(" | ")} |`);
  lines.splice(1, 0, `|${header.map((_, index) => (index < 2 ? "---" : "---:")).join("|")}|`);
  return lines.join("\n");
}

/** What the table's figures are, in one paragraph under it. */
export function formatTableFooter(report: BenchReport): string {
  const { reps, duration, cpu, link } = report.settings;
  const failures = report.results.flatMap((result) =>
    result.reps.flatMap((rep, index) => rep.errors.map((error) => `${result.label} rep ${index + 1}: ${error}`)),
  );
  const notMeasured = [...new Set(report.results.flatMap((result) => result.reps.flatMap((rep) => (rep.notMeasured ?? []).map((line) => `${result.label}: ${line}`))))];
  const hasReference = report.results.some((result) => result.id === REFERENCE_PATH && result.error === undefined);
  return [
    `median [min–max] of ${reps} rep${reps === 1 ? "" : "s"}, ${duration} s per measure, container to container ` +
      `(host: host to host); ×: median over kernel vxlan's median in this run${hasReference ? "" : " (kernel vxlan was not measured: no ratios)"}. ` +
      `--cpu ${cpu}${link ? `, --link ${link} (tbf on every host's underlay interface)` : ""}; ` +
      `${report.machine.cpus} CPUs, kernel ${report.machine.kernel}.`,
    "RTT: ping, echoes 5 ms apart (loaded: during a 1-stream TCP run). RR: sockperf ping-pong, 64-byte TCP messages. " +
      "UDP: iperf3 64-byte datagrams at the highest rate the sender reaches, received packets/s and loss. " +
      "CPU s/GB: busy CPU seconds (softirq included) per GB received over both TCP runs, of the machine and of the path's daemons.",
    ...(failures.length > 0 ? ["", "measures that failed:", ...failures.map((failure) => `- ${failure}`)] : []),
    ...(notMeasured.length > 0 ? ["", "not measured here (the tool cannot; not a failure):", ...notMeasured.map((line) => `- ${line}`)] : []),
  ].join("\n");
}
