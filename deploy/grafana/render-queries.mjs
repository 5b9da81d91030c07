#!/usr/bin/env node
// Renders the panels of weft.json from a real Prometheus as one HTML page of SVG line charts
// (Grafana is not in Debian's archive, so the dashboard's own queries are drawn this way):
//   node deploy/grafana/render-queries.mjs <prometheus URL> <out.html> [minutes, default 15]
// Each panel's expressions run through /api/v1/query_range over the last minutes, $instance as .*.
// Screenshot the page with `chromium --headless --screenshot=out.png out.html`.
import { readFileSync, writeFileSync } from "node:fs";

const [base, out, minutesArg] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: render-queries.mjs <prometheus URL> <out.html> [minutes]");
  process.exit(2);
}
const minutes = Number(minutesArg ?? 15);
const dashboard = JSON.parse(readFileSync(new URL("./weft.json", import.meta.url), "utf8"));
const end = Math.floor(Date.now() / 1000);
const start = end - minutes * 60;
const step = Math.max(5, Math.floor((end - start) / 120));
const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function legend(format, metric) {
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label) => metric[label] ?? "");
}

function formatValue(value, unit) {
  if (!Number.isFinite(value)) return "-";
  if (unit === "s") return value < 0.001 ? `${(value * 1e6).toFixed(0)} µs` : value < 1 ? `${(value * 1000).toFixed(2)} ms` : `${value.toFixed(0)} s`;
  if (unit === "bps") return value > 1e6 ? `${(value / 1e6).toFixed(1)} Mb/s` : `${(value / 1e3).toFixed(1)} kb/s`;
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

async function query(expr) {
  const url = `${base}/api/v1/query_range?query=${encodeURIComponent(expr.replaceAll("$instance", ".*"))}&start=${start}&end=${end}&step=${step}`;
  const body = await (await fetch(url)).json();
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

function chart(panel, series) {
  const width = 520, height = 200, left = 64, bottom = 22;
  const points = series.flatMap((s) => s.values);
  const unit = panel.fieldConfig?.defaults?.unit;
  if (points.length === 0) return `<svg width="${width}" height="${height}"><text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#888">no data</text></svg>`;
  const ys = points.map(([, v]) => Number(v)).filter(Number.isFinite);
  let [low, high] = [Math.min(0, ...ys), Math.max(...ys)];
  if (high === low) high = low + 1;
  const x = (t) => left + ((t - start) / (end - start)) * (width - left - 8);
  const y = (v) => 8 + (1 - (v - low) / (high - low)) * (height - bottom - 8);
  const lines = series.map((s, i) => {
    const d = s.values.filter(([, v]) => Number.isFinite(Number(v))).map(([t, v], j) => `${j ? "L" : "M"}${x(t).toFixed(1)},${y(Number(v)).toFixed(1)}`).join("");
    return `<path d="${d}" fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.6"/>`;
  });
  const ticks = [low, (low + high) / 2, high].map((v) => `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="10" fill="#555">${escape(formatValue(v, unit))}</text><line x1="${left}" x2="${width - 8}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
  const times = [start, (start + end) / 2, end].map((t) => `<text x="${x(t)}" y="${height - 6}" text-anchor="middle" font-size="10" fill="#555">${new Date(t * 1000).toISOString().slice(11, 16)}</text>`);
  return `<svg width="${width}" height="${height}">${ticks.join("")}${times.join("")}${lines.join("")}</svg>`;
}

const cells = [];
for (const panel of dashboard.panels) {
  const series = [];
  for (const target of panel.targets) {
    for (const result of await query(target.expr)) series.push({ name: legend(target.legendFormat ?? "", result.metric), values: result.values });
  }
  const keys = series
    .slice(0, 8)
    .map((s, i) => `<span style="color:${colors[i % colors.length]}">■</span> ${escape(s.name)} <b>${escape(formatValue(Number(s.values.at(-1)?.[1]), panel.fieldConfig?.defaults?.unit))}</b>`)
    .join(" &nbsp; ");
  cells.push(`<div class="panel"><h2>${escape(panel.title)}</h2>${chart(panel, series.slice(0, 8))}<div class="keys">${keys}</div></div>`);
}

writeFileSync(
  out,
  `<!doctype html><meta charset="utf-8"><title>${escape(dashboard.title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:12px;background:#fafafa}h1{font-size:18px;margin:4px 0 10px}
.grid{display:grid;grid-template-columns:repeat(2,540px);gap:10px}.panel{background:#fff;border:1px solid #ddd;padding:6px 8px}
h2{font-size:13px;margin:0 0 4px}.keys{font-size:11px;color:#333;min-height:28px}</style>
<h1>${escape(dashboard.title)} — the dashboard's queries against ${escape(base)}, last ${minutes} min (${new Date(end * 1000).toISOString()})</h1>
<div class="grid">${cells.join("\n")}</div>\n`,
);
console.log(`${out}: ${cells.length} panels`);
