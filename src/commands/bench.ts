import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { CommandModule } from "yargs";
import { formatReportMarkdown, parseBenchReport, runBench, writeReportFiles } from "../bench/bench.js";
import { BUILTIN_PATHS } from "../bench/paths.js";
import { parseBenchSettings } from "../bench/settings.js";
import { lastString } from "./store-flags.js";

/**
 * `weft bench`: weft against the native overlays, each path in a 2-host lab of its own, as
 * root. Prints the markdown table; --json/--svg/--markdown write the raw reps, the chart and
 * the table to files.
 */
interface BenchArgs {
  paths?: string;
  reps?: string;
  duration?: string;
  cpu?: string;
  link?: string;
  flanneld?: string;
  extra?: string[];
  json?: string;
  svg?: string;
  markdown?: string;
  "from-json"?: string;
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: "bench",
  describe: "measure weft against host, bridge, kernel vxlan and Docker's overlay, each in a real 2-host lab (root)",
  builder: (yargs) =>
    yargs
      .option("paths", { type: "string", coerce: lastString, describe: `comma-separated paths (default all): ${BUILTIN_PATHS.map((p) => p.id).join(", ")}, flanneld-udp, flanneld-vxlan (with --flanneld), extras` })
      .option("reps", { type: "string", coerce: lastString, describe: "repetitions of every measure (default 3); figures are median [min–max]" })
      .option("duration", { type: "string", coerce: lastString, describe: "seconds per measure (default 5)" })
      .option("cpu", { type: "string", coerce: lastString, describe: "shared (default): hosts share all cores; pinned: each lab host on a core of its own (cpuset)" })
      .option("link", { type: "string", coerce: lastString, describe: "shape every host's underlay interface to this rate (tc tbf), e.g. 10gbit" })
      .option("flanneld", { type: "string", coerce: lastString, describe: "flanneld binary: adds rows flanneld-udp and flanneld-vxlan on the same topology" })
      .option("extra", {
        type: "string",
        array: true,
        describe: "NAME[:BACKEND]=COMMAND (repeatable): another daemon per host, placeholders {etcd} {prefix} {iface} {address} {subnetFile} {stateDir} {host}",
      })
      .option("json", { type: "string", coerce: lastString, describe: "write the report with every raw rep to this file" })
      .option("svg", { type: "string", coerce: lastString, describe: "write the bar chart (throughput and latency) to this file" })
      .option("markdown", { type: "string", coerce: lastString, describe: "write the table to this file" })
      .option("from-json", { type: "string", coerce: lastString, describe: "measure nothing: render the table (and --svg/--markdown) from a report written by --json" })
      .strict(),
  handler: async (args) => {
    const settings = parseBenchSettings(args);
    const fromJson = args["from-json"];
    if (fromJson !== undefined) {
      const report = parseBenchReport(await readFile(fromJson, "utf8").catch((error: Error) => {
        throw new Error(`--from-json ${fromJson}: ${error.message}`, { cause: error });
      }), fromJson);
      await writeReportFiles(report, { svg: settings.svg, markdown: settings.markdown });
      process.stdout.write(formatReportMarkdown(report));
      return;
    }
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
      throw new Error("weft bench builds labs of network namespaces, which only root may do: run it with sudo");
    }
    if (args.flanneld !== undefined && !existsSync(args.flanneld)) throw new Error(`--flanneld ${args.flanneld}: no such file`);
    const command = `weft bench ${process.argv.slice(3).join(" ")}`.trim();
    const report = await runBench(settings, { command });
    await writeReportFiles(report, settings);
    process.stdout.write(formatReportMarkdown(report));
    // A path or a single measure that failed is in the table and its footer; the exit status says so too.
    if (report.results.some((result) => result.error !== undefined || result.reps.some((rep) => rep.errors.length > 0))) process.exitCode = 1;
  },
};
