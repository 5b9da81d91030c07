import { formatTable } from "../observe/text-table.js";
import type { PeerProbeResult } from "./peer-probe.js";
import { formatVerdict, type PathMtuObservation, type VerdictKind } from "./verdict.js";

/** `weft probe --json`: one object per peer, structured values plus the verdict's text. */
export interface PeerProbeJson {
  subnet: string;
  publicIP: string;
  overlayAddress: string | null;
  underlay: { sent: number; received: number; lossPercent: number; rttMicros: { min: number; avg: number; max: number } | null };
  pathMtu: PathMtuObservation;
  overlay: PeerProbeResult["overlay"] | null;
  verdict: VerdictKind;
  /** What to do, as the table prints it. */
  advice: string;
  lowerMtuTo?: number;
}

export function rttSummary(rttMicros: readonly number[]): { min: number; avg: number; max: number } | null {
  if (rttMicros.length === 0) return null;
  return { min: Math.min(...rttMicros), avg: Math.round(rttMicros.reduce((a, b) => a + b, 0) / rttMicros.length), max: Math.max(...rttMicros) };
}

export function lossPercent(sent: number, received: number): number {
  return sent === 0 ? 0 : Math.round(((sent - received) / sent) * 100);
}

export function probeResultJson(result: PeerProbeResult): PeerProbeJson {
  return {
    subnet: result.target.subnet,
    publicIP: result.target.publicIP,
    overlayAddress: result.target.overlayAddress ?? null,
    underlay: {
      sent: result.underlay.sent,
      received: result.underlay.received,
      lossPercent: lossPercent(result.underlay.sent, result.underlay.received),
      rttMicros: rttSummary(result.underlay.rttMicros),
    },
    pathMtu: result.pathMtu,
    overlay: result.overlay ?? null,
    verdict: result.verdict.kind,
    advice: formatVerdict(result.verdict),
    ...(result.verdict.kind === "mtu-black-hole" && result.verdict.lowerTo !== undefined ? { lowerMtuTo: result.verdict.lowerTo } : {}),
  };
}

/** µs resolution: "87µs", "1.234ms". */
export function formatMicros(micros: number): string {
  return micros < 1000 ? `${micros}µs` : `${(micros / 1000).toFixed(3)}ms`;
}

function formatPathMtu(pathMtu: PathMtuObservation): string {
  switch (pathMtu.status) {
    case "fits":
      return `${pathMtu.expected} fits`;
    case "smaller":
      return `path MTU ${pathMtu.mtu} < ${pathMtu.expected} (${pathMtu.source})`;
    case "unknown":
      return "-";
  }
}

function formatOverlay(result: PeerProbeResult): string {
  const overlay = result.overlay;
  if (!overlay) return "- (host-gw)";
  switch (overlay.status) {
    case "ok":
      return `${overlay.bytes} B in ${formatMicros(overlay.rttMicros)}`;
    case "blocked":
      return overlay.why === "no answer" ? "no answer" : `no answer (${overlay.why})`;
    case "too-big":
      return `small ok, ${overlay.bytes} B: ${overlay.why}`;
  }
}

export function formatProbeTable(results: readonly PeerProbeResult[]): string {
  const header = ["PEER", "PUBLIC IP", "RTT min/avg/max", "LOSS", "UNDERLAY MTU", "OVERLAY", "VERDICT"];
  const rows = results.map((result) => {
    const rtt = rttSummary(result.underlay.rttMicros);
    return [
      result.target.subnet,
      result.target.publicIP,
      rtt ? `${formatMicros(rtt.min)}/${formatMicros(rtt.avg)}/${formatMicros(rtt.max)}` : "-",
      `${lossPercent(result.underlay.sent, result.underlay.received)}%`,
      formatPathMtu(result.pathMtu),
      formatOverlay(result),
      formatVerdict(result.verdict),
    ];
  });
  return `${formatTable([header, ...rows])}\n`;
}
