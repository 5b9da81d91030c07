import type { LabContainerState, LabState } from "./lab-state.js";
import { pingFrom } from "./ping.js";
import { formatTable } from "../observe/text-table.js";
import { fetchCommand, parseWhoami, WHOAMI_PATH } from "./docker-plan.js";
import { dockerCli } from "./lab-docker.js";
import { hostOf } from "./topology-plan.js";

/**
 * `weft lab check`: every container pings every other container, and per host one
 * don't-fragment ping of the largest payload the MTU allows (MTU − 20 IP − 8 ICMP) to a
 * container on the next host — the packet that breaks first when an MTU is wrong. In a lab
 * with Docker, every container also fetches every other one's whoami page with
 * `docker exec <from> wget` (TCP through Docker's bridge and iptables chains), which answers
 * with the server's name and the source address it saw (so NAT on the way shows).
 * In a dual-stack lab, pings, don't-fragment pings and fetches run for each family (IPv6: MTU −
 * 40 − 8); an IPv6-only lab has only the IPv6 ones.
 */
export interface CheckResult {
  from: string;
  fromAddress: string;
  to: string;
  toAddress: string;
  /** "ping", "df" for the don't-fragment max-size ping, "http" for a fetch between Docker containers. */
  kind: "ping" | "df" | "http";
  /** IP version of the probe: the container addresses it ran between. */
  family: 4 | 6;
  /** ICMP payload bytes (0 for "http"). */
  payload: number;
  ok: boolean;
  rttMs?: number;
  /** Why it failed (ping's or wget's own words), empty when ok. */
  detail: string;
  /** "http": the source address the server saw (the client's own address unless something masqueraded it). */
  seenAs?: string;
  /**
   * "df": the path MTU the sender was told (ICMP frag-needed / ICMPv6 packet too big) when it is
   * below the container's MTU; the ping then passed at that size. IPv6 over an IPv6 underlay
   * costs 70 bytes of vxlan, not flannel's 50, so FLANNEL_MTU is 20 too big for IPv6 (as with
   * flanneld): path MTU discovery is what makes it work, and this says it does.
   */
  pathMtu?: number;
}

/** IP header + ICMP(v6) echo header: what a don't-fragment echo adds to its payload. */
const ECHO_OVERHEAD = { 4: 20 + 8, 6: 40 + 8 } as const;
const DEFAULT_PAYLOAD = 56;
const CONCURRENCY = 8;

interface Probe {
  from: LabContainerState;
  to: LabContainerState;
  kind: CheckResult["kind"];
  family: 4 | 6;
  payload: number;
}

/** A container's address of one family (undefined when it has none). */
function addressOf(container: LabContainerState, family: 4 | 6): string | undefined {
  return family === 4 ? container.address : container.addressV6;
}

export function planChecks(state: LabState): Probe[] {
  const probes: Probe[] = [];
  for (const family of [4, 6] as const) {
    const addressed = state.containers.filter((container) => addressOf(container, family) !== undefined);
    for (const from of addressed) {
      for (const to of addressed) {
        if (from !== to) probes.push({ from, to, kind: "ping", family, payload: DEFAULT_PAYLOAD });
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
        probes.push({ from, to, kind: "df", family, payload: from.mtu - ECHO_OVERHEAD[family] });
      }
    });
  }
  for (const family of [4, 6] as const) {
    const docker = state.containers.filter((container) => addressOf(container, family) !== undefined && container.docker !== undefined);
    for (const from of docker) {
      for (const to of docker) {
        if (from !== to) probes.push({ from, to, kind: "http", family, payload: 0 });
      }
    }
  }
  return probes;
}

export async function runChecks(state: LabState): Promise<CheckResult[]> {
  const probes = planChecks(state);
  const results: CheckResult[] = new Array(probes.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < probes.length) {
      const index = next++;
      const probe = probes[index] as Probe;
      results[index] = probe.kind === "http" ? await runFetch(state, probe) : await runProbe(probe);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, probes.length) }, worker));
  return results;
}

async function runProbe(probe: Probe): Promise<CheckResult> {
  const target = addressOf(probe.to, probe.family) as string;
  const options = { count: 1, waitSeconds: 1, payload: probe.payload, dontFragment: probe.kind === "df", timeoutMs: 5000 };
  let outcome = await pingFrom(probe.from.namespace, target, options);
  // One retry: the very first packet to a peer may race neighbour/ARP resolution.
  if (outcome.exitCode !== 0) outcome = await pingFrom(probe.from.namespace, target, options);
  // A don't-fragment ping told a smaller path MTU (ping: "message too long, mtu: 1430"): path MTU
  // discovery works; the largest packet must then pass at that size (a black hole would not).
  const toldMtu = probe.kind === "df" && outcome.exitCode !== 0 ? Number(/message too long, mtu[:=] ?(\d+)/.exec(outcome.stdout + outcome.stderr)?.[1] ?? NaN) : NaN;
  let pathMtu: number | undefined;
  if (Number.isInteger(toldMtu) && toldMtu > ECHO_OVERHEAD[probe.family] && toldMtu < (probe.from.mtu ?? Infinity)) {
    pathMtu = toldMtu;
    outcome = await pingFrom(probe.from.namespace, target, { ...options, payload: toldMtu - ECHO_OVERHEAD[probe.family] });
  }
  const ok = outcome.exitCode === 0;
  const detail = ok
    ? ""
    : (outcome.stderr.trim().split("\n")[0] || outcome.stdout.split("\n").find((line) => /loss|errors|unreachable/i.test(line))?.trim() || `exit code ${outcome.exitCode}`);
  return {
    from: probe.from.name,
    fromAddress: addressOf(probe.from, probe.family) as string,
    to: probe.to.name,
    toAddress: target,
    kind: probe.kind,
    family: probe.family,
    payload: pathMtu === undefined ? probe.payload : pathMtu - ECHO_OVERHEAD[probe.family],
    ok,
    rttMs: outcome.rttMs,
    detail,
    ...(pathMtu !== undefined ? { pathMtu } : {}),
  };
}

/** `docker exec <from> wget http://<to>/cgi-bin/whoami` on the from-container's dockerd; one retry, as for pings. */
async function runFetch(state: LabState, probe: Probe): Promise<CheckResult> {
  const target = addressOf(probe.to, probe.family) as string;
  const dockerd = hostOf(state, probe.from.host).dockerd;
  const fetch = async () => {
    if (!dockerd) return { exitCode: 1, stdout: "", stderr: `host ${probe.from.host} has no dockerd` };
    return dockerCli(dockerd, ["exec", probe.from.name, ...fetchCommand(target)], { allowFailure: true, timeoutMs: 15_000 });
  };
  let outcome = await fetch();
  if (outcome.exitCode !== 0) outcome = await fetch();
  const whoami = outcome.exitCode === 0 ? parseWhoami(outcome.stdout) : undefined;
  const ok = whoami?.name === probe.to.name;
  const detail = ok
    ? ""
    : outcome.exitCode === 0
      ? `GET ${WHOAMI_PATH} answered "${outcome.stdout.trim().slice(0, 80)}", expected "${probe.to.name} <address>"`
      : outcome.stderr.trim().split("\n")[0] || `wget exit code ${outcome.exitCode}`;
  return {
    from: probe.from.name,
    fromAddress: addressOf(probe.from, probe.family) as string,
    to: probe.to.name,
    toAddress: target,
    kind: "http",
    family: probe.family,
    payload: 0,
    ok,
    detail,
    ...(whoami ? { seenAs: whoami.remoteAddress } : {}),
  };
}

/** "ok", "FAIL", or "-" on the diagonal / "?" when there was no such probe: one cell of a FROM × TO grid. */
function formatGrid(results: readonly CheckResult[], cellOf: (result: CheckResult) => string): string {
  const names = [...new Set(results.flatMap((result) => [result.from, result.to]))];
  const addresses = new Map(results.flatMap((result) => [[result.from, result.fromAddress], [result.to, result.toAddress]] as const));
  const cell = (from: string, to: string): string => {
    if (from === to) return "-";
    const result = results.find((candidate) => candidate.from === from && candidate.to === to);
    return result === undefined ? "?" : cellOf(result);
  };
  return formatTable([
    ["FROM \\ TO", ...names],
    ...names.map((from) => [`${from} ${addresses.get(from) ?? ""}`, ...names.map((to) => cell(from, to))]),
  ]);
}

/** An HTTP fetch the server saw from another address than the client's own. */
function masqueraded(result: CheckResult): boolean {
  return result.ok && result.seenAs !== undefined && result.seenAs !== result.fromAddress;
}

/**
 * The compact form: a FROM × TO grid of the ping matrix, one line per don't-fragment ping,
 * the reason of every failure, and the summary line.
 */
export function formatCheckMatrix(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  const dualStack = results.some((result) => result.family === 6);
  for (const family of [4, 6] as const) {
    const pings = results.filter((result) => result.kind === "ping" && result.family === family);
    const df = results.filter((result) => result.kind === "df" && result.family === family);
    if (pings.length === 0 && df.length === 0 && (family === 6 || dualStack)) continue;
    const label = dualStack ? `IPv${family} ` : "";
    if (lines.length > 0) lines.push("");
    lines.push(`${label}ping matrix (${DEFAULT_PAYLOAD} B payload)`, formatGrid(pings, (result) => (result.ok ? "ok" : "FAIL")));
    if (df.length > 0) {
      lines.push("", `${label}don't-fragment pings, largest payload the MTU allows (MTU - ${ECHO_OVERHEAD[family]})`);
      for (const result of df) {
        const rtt = result.rttMs === undefined ? "" : `  ${result.rttMs.toFixed(3)} ms`;
        const told = result.pathMtu === undefined ? "" : `  (${pathMtuNote(result)})`;
        lines.push(`${result.from} ${result.fromAddress} -> ${result.to} ${result.toAddress}  ${result.payload} B  ${result.ok ? "ok" : "FAIL"}${rtt}${told}`);
      }
    }
  }
  const fetchFamilies = [4, 6].filter((family) => results.some((result) => result.kind === "http" && result.family === family));
  for (const family of fetchFamilies) {
    const fetches = results.filter((result) => result.kind === "http" && result.family === family);
    const label = fetchFamilies.length > 1 || family === 6 ? `IPv${family} ` : "";
    lines.push("", `${label}HTTP fetch matrix (docker exec FROM wget http://TO${WHOAMI_PATH}; "nat": the server saw another source address)`);
    lines.push(formatGrid(fetches, (result) => (!result.ok ? "FAIL" : masqueraded(result) ? "nat" : "ok")));
    const natted = fetches.filter(masqueraded);
    for (const from of [...new Set(natted.map((result) => result.from))]) {
      const seen = natted.filter((result) => result.from === from);
      const first = seen[0] as CheckResult;
      lines.push(`${from} ${first.fromAddress} seen as ${[...new Set(seen.map((result) => result.seenAs))].join(", ")} by ${seen.map((result) => result.to).join(", ")}`);
    }
    if (natted.length > 0) lines.push("(masqueraded on the way: Docker masquerades its subnet when weft runs without --ip-masq, as mk-docker-opts' inverted --ip-masq says)");
  }
  const failures = results.filter((result) => !result.ok);
  if (failures.length > 0) {
    lines.push("", "failures");
    for (const result of failures) {
      lines.push(`${result.kind === "df" ? `df ${result.payload} B` : result.kind} ${result.from} ${result.fromAddress} -> ${result.to} ${result.toAddress}: ${result.detail}`);
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
    result.kind === "df" ? `df ping ${result.payload} B` : result.kind === "http" ? `http GET ${WHOAMI_PATH}` : `ping ${result.payload} B`,
    (result.ok ? (result.seenAs !== undefined ? `ok, seen as ${result.seenAs}` : "ok") : `FAIL ${result.detail}`) + (result.pathMtu !== undefined ? ` (${pathMtuNote(result)})` : ""),
    result.rttMs === undefined ? "-" : `${result.rttMs.toFixed(3)} ms`,
  ]);
  return [formatTable([header, ...rows]), checkSummary(results)].join("\n");
}

/** "path MTU 1430, told by ICMPv6 packet too big": why a don't-fragment ping ran below the container MTU. */
function pathMtuNote(result: CheckResult): string {
  return `path MTU ${result.pathMtu}, told by ${result.family === 6 ? "ICMPv6 packet too big" : "ICMP frag-needed"}`;
}
