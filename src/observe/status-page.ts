/**
 * GET /status of the health server: one read-only HTML page for a person at a browser — this
 * host's lease, the peer table with probe verdicts and RTTs (a row per family: a dual-stack
 * peer's IPv4 and IPv6 paths are probed and shown apart), data-path counters, etcd
 * reachability, the /readyz checks. Plain HTML with inline CSS, no script, no external asset (a
 * host daemon's page must render from an air-gapped browser). Pure: model in, text out.
 */
import type { Registry } from "prom-client";

/** One peer lease: one path per family it holds (a dual-stack peer has an IPv4 and an IPv6 one). */
export interface StatusPeer {
  paths: StatusPath[];
}

/** A peer's subnet of one family, the address it is reached at, and that path's probe verdict. */
export interface StatusPath {
  family: 4 | 6;
  subnet: string;
  publicIP: string;
  /** From the last probe round; undefined when probing is off or the path was not probed (yet). */
  verdict?: string;
  /** What to do, as `weft probe` prints it. */
  advice?: string;
  rttMicros?: number;
  /** Why the path is never probed (e.g. the backend carries no IPv6), shown instead of a verdict. */
  notProbed?: string;
}

export interface StatusModel {
  version: string;
  backend: string;
  hostname: string;
  lease: { subnet: string; publicIP: string; expiresAt: Date | undefined; reservation: boolean } | undefined;
  /** true, or why not (the error of a live call made for this page). */
  etcd: { endpoints: string; reachable: true | string };
  ready: { ready: boolean; checks: Record<string, boolean | string> };
  peers: StatusPeer[];
  /** Whether `weft run --peer-probe-interval` is on. */
  probing: boolean;
  /** Sample values by name and labels, e.g. ["weft_dataplane_packets_total", "direction=inside", 12]. */
  counters: Array<[string, string, number]>;
  now: Date;
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => ESCAPES[character] as string);
}

function table(header: readonly string[], rows: readonly (readonly string[])[], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${escapeHtml(empty)}</p>`;
  const head = `<tr>${header.map((cell) => `<th>${escapeHtml(cell)}</th>`).join("")}</tr>`;
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join("")}</tr>`).join("\n");
  return `<table>\n${head}\n${body}\n</table>`;
}

function badge(ok: boolean, text: string): string {
  return `<span class="${ok ? "ok" : "bad"}">${escapeHtml(text)}</span>`;
}

function formatRtt(micros: number | undefined): string {
  if (micros === undefined) return "-";
  return micros < 1000 ? `${micros} µs` : `${(micros / 1000).toFixed(3)} ms`;
}

function formatExpiry(lease: NonNullable<StatusModel["lease"]>, now: Date): string {
  if (lease.reservation) return "never (reservation)";
  if (!lease.expiresAt) return "-";
  const seconds = Math.max(0, Math.round((lease.expiresAt.getTime() - now.getTime()) / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return `${lease.expiresAt.toISOString()} (in ${hours} h ${minutes} min)`;
}

export function renderStatusPage(model: StatusModel): string {
  const { lease } = model;
  const leaseRows = lease
    ? [
        ["subnet", escapeHtml(lease.subnet)],
        ["public IP", escapeHtml(lease.publicIP)],
        ["expires", escapeHtml(formatExpiry(lease, model.now))],
      ]
    : [];
  // Peers in the order of their first subnet; a dual-stack peer's IPv6 row right below its IPv4 row.
  const peerRows = [...model.peers]
    .sort((a, b) => (a.paths[0]?.subnet ?? "").localeCompare(b.paths[0]?.subnet ?? "", "en", { numeric: true }))
    .flatMap((peer) => peer.paths)
    .map((path) => [
      escapeHtml(path.subnet),
      `IPv${path.family}`,
      escapeHtml(path.publicIP),
      path.verdict !== undefined
        ? badge(path.verdict === "ok", path.advice ?? path.verdict)
        : escapeHtml(!model.probing ? "-" : path.notProbed !== undefined ? `not probed: ${path.notProbed}` : "not probed yet"),
      escapeHtml(formatRtt(path.rttMicros)),
    ]);
  const checkRows = Object.entries(model.ready.checks).map(([check, value]) => [escapeHtml(check), badge(value === true, value === true ? "ok" : value === false ? "not yet" : value)]);
  const counterRows = model.counters.map(([name, labels, value]) => [escapeHtml(name), escapeHtml(labels), escapeHtml(String(value))]);
  const problems = model.peers.filter((peer) => peer.paths.some((path) => path.verdict !== undefined && path.verdict !== "ok")).length;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>weft status: ${escapeHtml(model.hostname)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.5em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.25em 0.9em 0.25em 0; font-variant-numeric: tabular-nums; }
th { color: #555; font-weight: 600; }
.ok { color: #176b1f; font-weight: 600; }
.bad { color: #b00020; font-weight: 600; }
.empty, .meta { color: #666; }
</style>
</head>
<body>
<h1>weft on ${escapeHtml(model.hostname)}: ${badge(model.ready.ready, model.ready.ready ? "ready" : "not ready")}</h1>
<p class="meta">weft ${escapeHtml(model.version)}, backend ${escapeHtml(model.backend)}, page generated ${escapeHtml(model.now.toISOString())}; read-only (the data behind it: /metrics, /readyz?verbose)</p>
<h2>This host's lease</h2>
${table(["", ""], leaseRows, "no lease yet")}
<h2>etcd</h2>
<p>${escapeHtml(model.etcd.endpoints)}: ${badge(model.etcd.reachable === true, model.etcd.reachable === true ? "reachable" : `unreachable: ${model.etcd.reachable}`)}</p>
<h2>Peers (${model.peers.length}${model.probing ? `, ${problems} with a problem` : ", probing off: weft run --peer-probe-interval"})</h2>
${table(["subnet", "family", "public IP", "probe verdict", "RTT"], peerRows, "no peers")}
<h2>Readiness</h2>
${table(["check", "state"], checkRows, "no checks")}
<h2>Data path counters</h2>
${table(["counter", "labels", "value"], counterRows, "no data-path counters (the kernel carries this backend's traffic)")}
</body>
</html>
`;
}

/** The data-path and etcd counters of `registry` for the page (weft_dataplane_*, weft_etcd_errors_total), non-zero or not. */
export async function statusCounters(registry: Registry): Promise<StatusModel["counters"]> {
  const wanted = (name: string) => name.startsWith("weft_dataplane_") || name === "weft_etcd_errors_total" || name === "weft_backend_kernel_failures_total";
  const result: StatusModel["counters"] = [];
  for (const metric of await registry.getMetricsAsJSON()) {
    if (!wanted(metric.name)) continue;
    for (const value of metric.values) {
      const labels = Object.entries(value.labels).map(([key, label]) => `${key}=${String(label)}`).join(", ");
      result.push([metric.name, labels, value.value]);
    }
  }
  return result;
}
