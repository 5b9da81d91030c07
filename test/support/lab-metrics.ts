import type { LabHost } from "../../src/lab/lab.js";

/** One lab daemon's /metrics as text, fetched inside its namespace (curl starts faster than node). */
export async function readMetrics(host: LabHost): Promise<string> {
  const url = `http://127.0.0.1:${host.state.healthzPort}/metrics`;
  const result = await host.exec("curl", ["-sf", "-m", "5", url], { timeoutMs: 10_000 });
  return result.stdout;
}

/**
 * The body of one of a lab daemon's HTTP endpoints (`/readyz?verbose`, `/healthz`, …) whatever
 * its status: a /readyz that answers 503 still says why.
 */
export async function readEndpoint(host: LabHost, path: string): Promise<string> {
  const url = `http://127.0.0.1:${host.state.healthzPort}${path}`;
  const result = await host.exec("curl", ["-s", "-m", "5", url], { timeoutMs: 10_000 });
  return result.stdout;
}

/** The smallest `weft_peers` series of one daemon (0 before any): every family and device has its peers. */
export async function fewestPeers(host: LabHost): Promise<number> {
  const counts = [...(await readMetrics(host)).matchAll(/^weft_peers(?:\{[^}]*\})? (\d+)$/gm)].map((match) => Number(match[1]));
  return counts.length === 0 ? 0 : Math.min(...counts);
}

/**
 * The sum of every series of `name` whose labels include `labels` (all series when none are
 * given); 0 when the metric has no such series yet.
 */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const series = match[2] ?? "";
    if (Object.entries(labels).every(([label, value]) => series.includes(`${label}="${value}"`))) sum += Number(match[3]);
  }
  return sum;
}

/** Every series of `name` with its labels (the braces' text) and value, e.g. drops by reason. */
export function metricSeries(text: string, name: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) series.set(match[2] ?? "", Number(match[3]));
  }
  return series;
}
