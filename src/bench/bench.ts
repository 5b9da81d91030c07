import { writeFile } from "node:fs/promises";
import os from "node:os";
import { createProgress, prefixedProgress, type Progress } from "./progress.js";
import type { BenchReport } from "./results.js";
import { measurePath } from "./run.js";
import type { BenchSettings } from "./settings.js";
import { renderSvg } from "./svg.js";
import { formatMarkdownTable, formatTableFooter } from "./table.js";
import { formatTargets } from "./targets.js";

/**
 * `weft bench` as a program: every path in turn (one lab at a time, so paths never compete
 * with each other), then the report in the formats asked for. Returns the report; the caller
 * prints the table.
 */
export interface BenchRunOptions {
  /** The command line, recorded in the JSON and printed with the table. */
  command: string;
  progress?: Progress;
  workDir?: string;
}

export async function runBench(settings: BenchSettings, options: BenchRunOptions): Promise<BenchReport> {
  const progress = options.progress ?? createProgress();
  const report: BenchReport = {
    version: 1,
    startedAt: new Date().toISOString(),
    command: options.command,
    settings: {
      paths: settings.paths.map((path) => path.id),
      reps: settings.reps,
      duration: settings.duration,
      cpu: settings.cpu,
      ...(settings.link ? { link: settings.link.text } : {}),
    },
    machine: { cpus: os.cpus().length, kernel: os.release(), memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
    results: [],
  };
  for (const [index, path] of settings.paths.entries()) {
    const pathProgress = prefixedProgress(progress, `[${index + 1}/${settings.paths.length}] `);
    report.results.push(await measurePath(path, settings, { progress: pathProgress, workDir: options.workDir }));
  }
  progress.done();
  report.finishedAt = new Date().toISOString();
  return report;
}

/** The markdown block: command, table, footer. */
export function formatReportMarkdown(report: BenchReport): string {
  const targets = formatTargets(report);
  return [`\`${report.command}\` (${report.startedAt.slice(0, 10)})`, "", formatMarkdownTable(report), "", formatTableFooter(report), "", ...(targets ? [targets, ""] : [])].join("\n");
}

export async function writeReportFiles(report: BenchReport, settings: Pick<BenchSettings, "json" | "svg" | "markdown">): Promise<void> {
  if (settings.json) await writeFile(settings.json, `${JSON.stringify(report, null, 2)}\n`);
  if (settings.svg) await writeFile(settings.svg, renderSvg(report));
  if (settings.markdown) await writeFile(settings.markdown, formatReportMarkdown(report));
}

/**
 * A report written by --json, read back to render it again (--from-json): the table and the
 * chart are computed from the raw reps, so a rendering change needs no new run.
 */
export function parseBenchReport(text: string, file: string): BenchReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`--from-json ${file}: not JSON (${(error as Error).message})`, { cause: error });
  }
  const report = parsed as Partial<BenchReport> | null;
  if (typeof report !== "object" || report === null || report.version !== 1) throw new Error(`--from-json ${file}: not a weft bench report (no "version": 1)`);
  if (!Array.isArray(report.results) || typeof report.settings !== "object" || typeof report.machine !== "object") {
    throw new Error(`--from-json ${file}: a weft bench report needs "settings", "machine" and "results"`);
  }
  for (const [index, result] of report.results.entries()) {
    if (typeof result?.id !== "string" || typeof result.label !== "string" || !Array.isArray(result.reps)) {
      throw new Error(`--from-json ${file}: results[${index}] needs "id", "label" and "reps"`);
    }
    for (const rep of result.reps) rep.errors ??= [];
  }
  return report as BenchReport;
}
