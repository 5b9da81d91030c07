import { sleep } from "../async/sleep.js";
import { ECHO_OVERHEAD_BYTES } from "./icmp-packet.js";
import { cachedPathMtu } from "./path-mtu-cache.js";
import type { EchoOutcome, Pinger } from "./pinger.js";
import { judge, type Observations, type OverlayObservation, type PathMtuObservation, type UnderlayObservation, type Verdict } from "./verdict.js";

/** One peer lease, as the probes see it. */
export interface ProbeTarget {
  /** The peer's subnet: names it in output and logs. */
  subnet: string;
  publicIP: string;
  /** The peer's address on its flannel.N / TUN (its subnet's network address); undefined for host-gw. */
  overlayAddress: string | undefined;
  /** What carries the overlay ("UDP 8472"), for the verdict. */
  encapsulation: string;
}

export interface ProbeSettings {
  /** This host's underlay interface MTU (E): the size of the path MTU echo. */
  underlayMtu: number;
  /** FLANNEL_MTU: the size of the overlay echo. */
  overlayMtu: number;
  /** Underlay echoes per probe (loss is counted over them). */
  echoes: number;
  /** Spacing of those echoes. */
  echoIntervalMs: number;
  timeoutMs: number;
  /** Reads the kernel's PMTU cache; injectable for tests of the logic only. */
  cachedPathMtu?: (destination: string) => Promise<number | undefined>;
}

export interface PeerProbeResult extends Observations {
  target: ProbeTarget;
  verdict: Verdict;
}

/** The smallest echo (an IP packet of 84 bytes, as ping's default). */
const SMALL_ECHO_BYTES = 84;
/** IPv4's minimum MTU: the floor of the black-hole search. */
const MIN_IPV4_MTU = 68;

export async function probePeer(pinger: Pinger, target: ProbeTarget, settings: ProbeSettings): Promise<PeerProbeResult> {
  const underlay = await probeUnderlay(pinger, target.publicIP, settings);
  const expected = settings.underlayMtu;
  const pathMtu: PathMtuObservation =
    underlay.received === 0 ? { status: "unknown", expected, why: "the peer does not answer" } : await probePathMtu(pinger, target.publicIP, settings);
  const overlay =
    target.overlayAddress === undefined
      ? undefined
      : underlay.received === 0
        ? ({ status: "blocked", why: "the peer does not answer on the underlay" } as const)
        : await probeOverlay(pinger, target.overlayAddress, settings);
  const observations: Observations = {
    underlay,
    pathMtu,
    overlay,
    encapsulation: target.encapsulation,
    overheadBytes: settings.underlayMtu - settings.overlayMtu,
  };
  return { target, ...observations, verdict: judge(observations) };
}

async function probeUnderlay(pinger: Pinger, destination: string, settings: ProbeSettings): Promise<UnderlayObservation> {
  const outcomes: Promise<EchoOutcome>[] = [];
  for (let i = 0; i < settings.echoes; i++) {
    if (i > 0) await sleep(settings.echoIntervalMs);
    outcomes.push(pinger.echo({ destination, bytes: SMALL_ECHO_BYTES, timeoutMs: settings.timeoutMs }));
  }
  const rttMicros = (await Promise.all(outcomes)).flatMap((outcome) => (outcome.kind === "reply" ? [outcome.rttMicros] : []));
  return { sent: settings.echoes, received: rttMicros.length, rttMicros };
}

async function probePathMtu(pinger: Pinger, destination: string, settings: ProbeSettings): Promise<PathMtuObservation> {
  const expected = settings.underlayMtu;
  const outcome = await pinger.echo({ destination, bytes: expected, timeoutMs: settings.timeoutMs });
  if (outcome.kind === "reply") return { status: "fits", expected };
  if (outcome.kind === "frag-needed" && outcome.mtu > 0 && outcome.mtu < expected) {
    return { status: "smaller", expected, mtu: outcome.mtu, source: "frag-needed" };
  }
  // No frag-needed (rate-limited, or filtered): what the kernel learnt earlier, else search.
  const cached = await (settings.cachedPathMtu ?? cachedPathMtu)(destination);
  if (cached !== undefined && cached < expected) return { status: "smaller", expected, mtu: cached, source: "pmtu-cache" };
  if (outcome.kind !== "timeout" && outcome.kind !== "frag-needed") return { status: "unknown", expected, why: describeOutcome(outcome) };
  const largest = await largestThatFits(pinger, destination, SMALL_ECHO_BYTES, expected, settings.timeoutMs);
  return largest === undefined
    ? { status: "unknown", expected, why: "no DF echo got through" }
    : { status: "smaller", expected, mtu: largest, source: "search" };
}

/** Binary search (DF echoes) for the largest size in [low, high) that crosses; `low` is known to. */
async function largestThatFits(pinger: Pinger, destination: string, low: number, high: number, timeoutMs: number): Promise<number | undefined> {
  let fits = Math.max(low, MIN_IPV4_MTU);
  let failsAt = high;
  const check = await pinger.echo({ destination, bytes: fits, timeoutMs });
  if (check.kind !== "reply") return undefined;
  while (failsAt - fits > 1) {
    const middle = Math.floor((fits + failsAt) / 2);
    const outcome = await pinger.echo({ destination, bytes: middle, timeoutMs });
    if (outcome.kind === "reply") fits = middle;
    else failsAt = outcome.kind === "frag-needed" && outcome.mtu > fits ? Math.min(failsAt, outcome.mtu + 1) : middle;
  }
  return fits;
}

async function probeOverlay(pinger: Pinger, destination: string, settings: ProbeSettings): Promise<OverlayObservation> {
  const small = await pinger.echo({ destination, bytes: SMALL_ECHO_BYTES, timeoutMs: settings.timeoutMs });
  if (small.kind !== "reply") return { status: "blocked", why: describeOutcome(small) };
  const bytes = Math.max(settings.overlayMtu, ECHO_OVERHEAD_BYTES);
  const full = await pinger.echo({ destination, bytes, timeoutMs: settings.timeoutMs });
  if (full.kind === "reply") return { status: "ok", bytes, rttMicros: full.rttMicros };
  return { status: "too-big", bytes, why: describeOutcome(full), ...(full.kind === "frag-needed" && full.mtu > 0 ? { mtu: full.mtu } : {}) };
}

export function describeOutcome(outcome: EchoOutcome): string {
  switch (outcome.kind) {
    case "reply":
      return `reply in ${outcome.rttMicros} µs`;
    case "frag-needed":
      return outcome.mtu > 0 ? `frag-needed from ${outcome.from}: MTU ${outcome.mtu}` : `frag-needed from ${outcome.from}`;
    case "unreachable":
      return `unreachable (code ${outcome.code}) from ${outcome.from}`;
    case "time-exceeded":
      return `TTL expired at ${outcome.from}`;
    case "send-failed":
      return `not sent: ${outcome.error}`;
    case "timeout":
      return "no answer";
  }
}
