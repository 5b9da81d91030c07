import type { LabContainerState, LabState } from "./lab-state.js";
import { pingFrom } from "./ping.js";
import { formatTable } from "../observe/text-table.js";

/**
 * `weft lab check`: every container pings every other container, and per host one
 * don't-fragment ping of the largest payload the MTU allows (MTU − 20 IP − 8 ICMP) to a
 * container on the next host — the packet that breaks first when an MTU is wrong.
 */
export interface CheckResult {
  from: string;
  fromAddress: string;
  to: string;
  toAddress: string;
  /** "ping", or "df" for the don't-fragment max-size ping. */
  kind: "ping" | "df";
  /** ICMP payload bytes. */
  payload: number;
  ok: boolean;
  rttMs?: number;
  /** Why it failed (ping's own words), empty when ok. */
  detail: string;
}

const IP_AND_ICMP_HEADERS = 28;
const DEFAULT_PAYLOAD = 56;
const CONCURRENCY = 8;

interface Probe {
  from: LabContainerState;
  to: LabContainerState;
  kind: "ping" | "df";
  payload: number;
}

export function planChecks(state: LabState): Probe[] {
  const probes: Probe[] = [];
  const addressed = state.containers.filter((container) => container.address !== undefined);
  for (const from of addressed) {
    for (const to of addressed) {
      if (from !== to) probes.push({ from, to, kind: "ping", payload: DEFAULT_PAYLOAD });
    }
  }
  const hostsWithContainers = state.hosts.filter((host) => addressed.some((container) => container.host === host.name));
  hostsWithContainers.forEach((host, index) => {
    const next = hostsWithContainers[(index + 1) % hostsWithContainers.length];
    const from = addressed.find((container) => container.host === host.name);
    const to = next === host
      ? addressed.find((container) => container.host === host.name && container !== from)
      : addressed.find((container) => container.host === next?.name);
    if (from && to && from.mtu !== undefined) {
      probes.push({ from, to, kind: "df", payload: from.mtu - IP_AND_ICMP_HEADERS });
    }
  });
  return probes;
}

export async function runChecks(state: LabState): Promise<CheckResult[]> {
  const probes = planChecks(state);
  const results: CheckResult[] = new Array(probes.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < probes.length) {
      const index = next++;
      results[index] = await runProbe(probes[index] as Probe);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, probes.length) }, worker));
  return results;
}

async function runProbe(probe: Probe): Promise<CheckResult> {
  const target = probe.to.address as string;
  const options = { count: 1, waitSeconds: 1, payload: probe.payload, dontFragment: probe.kind === "df", timeoutMs: 5000 };
  let outcome = await pingFrom(probe.from.namespace, target, options);
  // One retry: the very first packet to a peer may race neighbour/ARP resolution.
  if (outcome.exitCode !== 0) outcome = await pingFrom(probe.from.namespace, target, options);
  const ok = outcome.exitCode === 0;
  const detail = ok
    ? ""
    : (outcome.stderr.trim().split("\n")[0] || outcome.stdout.split("\n").find((line) => /loss|errors|unreachable/i.test(line))?.trim() || `exit code ${outcome.exitCode}`);
  return {
    from: probe.from.name,
    fromAddress: probe.from.address as string,
    to: probe.to.name,
    toAddress: target,
    kind: probe.kind,
    payload: probe.payload,
    ok,
    rttMs: outcome.rttMs,
    detail,
  };
}

/**
 * The compact form: a FROM × TO grid of the ping matrix, one line per don't-fragment ping,
 * the reason of every failure, and the summary line.
 */
export function formatCheckMatrix(results: readonly CheckResult[]): string {
  const pings = results.filter((result) => result.kind === "ping");
  const names = [...new Set(pings.flatMap((result) => [result.from, result.to]))];
  const addresses = new Map(pings.flatMap((result) => [[result.from, result.fromAddress], [result.to, result.toAddress]] as const));
  const cell = (from: string, to: string): string => {
    if (from === to) return "-";
    const result = pings.find((candidate) => candidate.from === from && candidate.to === to);
    return result === undefined ? "?" : result.ok ? "ok" : "FAIL";
  };
  const grid = [
    ["FROM \\ TO", ...names],
    ...names.map((from) => [`${from} ${addresses.get(from) ?? ""}`, ...names.map((to) => cell(from, to))]),
  ];
  const lines = [`ping matrix (${DEFAULT_PAYLOAD} B payload)`, formatTable(grid)];
  const df = results.filter((result) => result.kind === "df");
  if (df.length > 0) {
    lines.push("", "don't-fragment pings, largest payload the MTU allows (MTU - 28)");
    for (const result of df) {
      const rtt = result.rttMs === undefined ? "" : `  ${result.rttMs.toFixed(3)} ms`;
      lines.push(`${result.from} ${result.fromAddress} -> ${result.to} ${result.toAddress}  ${result.payload} B  ${result.ok ? "ok" : "FAIL"}${rtt}`);
    }
  }
  const failures = results.filter((result) => !result.ok);
  if (failures.length > 0) {
    lines.push("", "failures");
    for (const result of failures) {
      lines.push(`${result.kind === "df" ? `df ${result.payload} B` : "ping"} ${result.from} ${result.fromAddress} -> ${result.to} ${result.toAddress}: ${result.detail}`);
    }
  }
  lines.push("", checkSummary(results));
  return lines.join("\n");
}

function checkSummary(results: readonly CheckResult[]): string {
  const failed = results.filter((result) => !result.ok).length;
  if (results.length === 0) return "no checks: the lab has no addressed containers (is it up with --containers ≥ 1?)";
  return failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks FAILED`;
}

/** A fixed-width table, one line per probe, and a summary line. */
export function formatCheckTable(results: readonly CheckResult[]): string {
  const header = ["FROM", "TO", "TEST", "RESULT", "RTT"];
  const rows = results.map((result) => [
    `${result.from} ${result.fromAddress}`,
    `${result.to} ${result.toAddress}`,
    result.kind === "df" ? `df ping ${result.payload} B` : `ping ${result.payload} B`,
    result.ok ? "ok" : `FAIL ${result.detail}`,
    result.rttMs === undefined ? "-" : `${result.rttMs.toFixed(3)} ms`,
  ]);
  return [formatTable([header, ...rows]), checkSummary(results)].join("\n");
}
