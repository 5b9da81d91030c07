import type { Registry } from "prom-client";
import { sleep } from "../async/sleep.js";
import type { BackendConfig } from "../config/network-config.js";
import { errorMessage } from "../errors/error-message.js";
import type { Lease } from "../lease/types.js";
import type { Logger } from "../observe/logger.js";
import type { PeerProbeResult, ProbeSettings, ProbeTarget } from "./peer-probe.js";
import { Pingers } from "./pinger.js";
import { probeAll } from "./probe-round.js";
import { probeMetrics, recordVerdictCounts, type ProbeMetrics } from "./probe-metrics.js";
import { formatMicros, rttSummary } from "./probe-report.js";
import { encapsulationOf, probeTargets } from "./probe-targets.js";
import { openIcmpSocket, type OpenIcmpSocket } from "./raw-icmp-socket.js";
import { formatVerdict, type VerdictKind } from "./verdict.js";

/**
 * The daemon's periodic peer probing (--peer-probe-interval): a round over every peer lease each
 * interval (a dual-stack peer's IPv4 and IPv6 paths apart, each its own verdict and log line),
 * one underlay echo per path plus the path MTU and overlay echoes, a few at a
 * time. A log line when a peer's verdict changes (a peer first seen "ok" is not news), metrics
 * without per-peer labels, and the last result per peer for /status.
 */
export interface PeerProbingOptions {
  intervalMs: number;
  backend: BackendConfig;
  /** FLANNEL_MTU. */
  overlayMtu: number;
  /**
   * The underlay MTU (Backend.MTU or the interface's: probeUnderlayMtu); by default FLANNEL_MTU
   * plus the IPv4 encapsulation's overhead, which is 20 short on a dual-stack vxlan host (FLANNEL_MTU = E − 70).
   */
  underlayMtu?: number;
  peers: () => readonly Lease[];
  logger: Logger;
  registry: Registry;
  openSocket?: OpenIcmpSocket;
  /** Probes in flight at once; default 8 (each waits on the network, not the CPU). */
  concurrency?: number;
}

export interface PeerProbing {
  /** The last result per path, by the peer's subnet of that family (a dual-stack peer has two). */
  results(): ReadonlyMap<string, PeerProbeResult>;
  /** Resolves when the current round (if any) has ended. */
  stop(): Promise<void>;
}

const ECHO_TIMEOUT_MS = 1000;
/** How long a path's first bad verdict waits for a second look (see confirmChanges). */
const FIRST_VERDICT_SETTLE_MS = 2000;

export function startPeerProbing(options: PeerProbingOptions): PeerProbing {
  const { logger } = options;
  const metrics = probeMetrics(options.registry);
  const settings: ProbeSettings = {
    underlayMtu: options.underlayMtu ?? options.overlayMtu + encapsulationOf(options.backend).overheadBytes,
    overlayMtu: options.overlayMtu,
    echoes: 1,
    echoIntervalMs: 0,
    timeoutMs: Math.min(ECHO_TIMEOUT_MS, options.intervalMs / 2),
  };
  const pinger = new Pingers(options.openSocket ?? openIcmpSocket, (family, error) => {
    logger.warn({ err: error, family }, `IPv${family} peers cannot be probed (they read "peer down"): ${errorMessage(error)}`);
  });
  try {
    // The IPv4 socket at once, so a missing CAP_NET_RAW turns probing off with one line; the
    // ICMPv6 one at the first IPv6 peer (a failure there only fails the IPv6 paths, saying why).
    pinger.open(4);
  } catch (error) {
    logger.error({ err: error }, `peer probing is off: ${errorMessage(error)}`);
    return { results: () => new Map(), stop: () => Promise.resolve() };
  }
  const results = new Map<string, PeerProbeResult>();
  const stopping = new AbortController();
  /**
   * A verdict that differs from the peer's last one is probed once more at once, and the second
   * answer is taken: one lost echo on a busy host must not log "peer down" and back (the change
   * is still seen within the round that found it).
   * A path's first verdict that is not ok is probed again after a pause instead: a peer that
   * started with this daemon (a cluster booting, a lab) may not have this host's lease from its
   * etcd watch yet, and until it has, its overlay does not answer; "encapsulation blocked" for
   * that moment would be a false alarm at every start (seen in a loaded lab: blocked 1 s after
   * the start, ok 2 s later). A peer that is really broken is reported one pause later.
   */
  const settleMs = Math.min(FIRST_VERDICT_SETTLE_MS, options.intervalMs / 2);
  const confirmChanges = async (round: PeerProbeResult[]): Promise<PeerProbeResult[]> => {
    const changed = round.filter((result) => {
      const before = results.get(peerKey(result.target));
      return before !== undefined && before.verdict.kind !== result.verdict.kind;
    });
    const firstProblems = round.filter((result) => !results.has(peerKey(result.target)) && result.verdict.kind !== "ok");
    if (changed.length === 0 && firstProblems.length === 0) return round;
    const probeAgain = async (targets: PeerProbeResult[]) => probeAll(pinger, targets.map((result) => result.target), settings, options.concurrency ?? 8);
    const again = changed.length > 0 ? await probeAgain(changed) : [];
    if (firstProblems.length > 0) {
      await sleep(settleMs, stopping.signal, { unref: true });
      if (!stopping.signal.aborted) again.push(...(await probeAgain(firstProblems)));
    }
    const byKey = new Map(again.map((result) => [peerKey(result.target), result]));
    return round.map((result) => byKey.get(peerKey(result.target)) ?? result);
  };
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const started = Date.now();
      try {
        const round = await probeAll(pinger, probeTargets(options.peers(), options.backend), settings, options.concurrency ?? 8);
        if (stopping.signal.aborted) break;
        const confirmed = await confirmChanges(round);
        if (stopping.signal.aborted) break;
        record(confirmed, results, metrics, logger);
      } catch (error) {
        logger.error({ err: error }, "a round of peer probing failed");
      }
      await sleep(Math.max(0, options.intervalMs - (Date.now() - started)), stopping.signal, { unref: true });
    }
  })();
  logger.info({ intervalMs: options.intervalMs }, "probing peers (underlay echo, path MTU, overlay echo)");
  return {
    results: () => results,
    async stop() {
      stopping.abort();
      pinger.close();
      await loop;
    },
  };
}

function record(round: readonly PeerProbeResult[], results: Map<string, PeerProbeResult>, metrics: ProbeMetrics, logger: Logger): void {
  const seen = new Set<string>();
  for (const result of round) {
    const key = peerKey(result.target);
    seen.add(key);
    for (const rtt of result.underlay.rttMicros) metrics.rtt.observe(rtt / 1e6);
    if (result.underlay.received < result.underlay.sent) metrics.failures.inc({ probe: "underlay" });
    if (result.underlay.received > 0 && result.pathMtu.status !== "fits") metrics.failures.inc({ probe: "path_mtu" });
    if (result.overlay && result.overlay.status !== "ok") metrics.failures.inc({ probe: "overlay" });
    const before: VerdictKind | undefined = results.get(key)?.verdict.kind;
    results.set(key, result);
    if (before === result.verdict.kind || (before === undefined && result.verdict.kind === "ok")) continue;
    const rtt = rttSummary(result.underlay.rttMicros);
    const fields = { subnet: result.target.subnet, publicIP: result.target.publicIP, verdict: result.verdict.kind, was: before ?? null, rttMicros: rtt?.avg ?? null };
    const line = `peer ${result.target.subnet} (${result.target.publicIP}): ${formatVerdict(result.verdict)}${rtt ? `, RTT ${formatMicros(rtt.avg)}` : ""}${before ? ` (was ${before})` : ""}`;
    if (result.verdict.kind === "ok") logger.info(fields, line);
    else logger.warn(fields, line);
  }
  // Leases that went away take their state with them.
  for (const key of [...results.keys()]) if (!seen.has(key)) results.delete(key);
  recordVerdictCounts(metrics, [...results.values()].map((result) => result.verdict.kind));
  metrics.rounds.inc();
}

function peerKey(target: ProbeTarget): string {
  return target.subnet;
}
