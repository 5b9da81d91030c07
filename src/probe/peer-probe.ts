import { sleep } from "../async/sleep.js";
import type { IpFamily } from "../net/ip-subnet.js";
import { ECHO_OVERHEAD_BYTES } from "./icmp-packet.js";
import { ECHO_OVERHEAD_BYTES_V6 } from "./icmpv6-packet.js";
import { cachedPathMtu } from "./path-mtu-cache.js";
import { addressFamily, type EchoOutcome, type Echoer } from "./pinger.js";
import { judge, type Observations, type OverlayObservation, type PathMtuObservation, type UnderlayObservation, type Verdict } from "./verdict.js";

/**
 * One path to a peer lease, as the probes see it: its IPv4 subnet via PublicIP, or its IPv6
 * subnet via PublicIPv6 (a dual-stack peer has both, probed apart: either family can break alone).
 */
export interface ProbeTarget {
  /** The peer's subnet of this family: names the path in output and logs. */
  subnet: string;
  /** PublicIP, or PublicIPv6 (canonical) for the IPv6 path: the family of the path. */
  publicIP: string;
  /** The peer's address on its flannel.N / flannel-v6.N / TUN (the subnet's network address); undefined for host-gw. */
  overlayAddress: string | undefined;
  /** What carries the overlay ("UDP 8472"), for the verdict. */
  encapsulation: string;
  /** Bytes the encapsulation adds over this family's underlay (vxlan: 50 over IPv4, 70 over IPv6). */
  overheadBytes: number;
}

/** The family of a path: that of the address it is probed at. */
export function targetFamily(target: Pick<ProbeTarget, "publicIP">): IpFamily {
  return addressFamily(target.publicIP);
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

/** Per family: the smallest echo (ping's default 56-byte payload), the echo headers, the minimum MTU (floor of the black-hole search). */
const ECHO_SIZES = {
  4: { small: 84, overhead: ECHO_OVERHEAD_BYTES, minMtu: 68 },
  6: { small: 104, overhead: ECHO_OVERHEAD_BYTES_V6, minMtu: 1280 },
} as const;

export async function probePeer(pinger: Echoer, target: ProbeTarget, settings: ProbeSettings): Promise<PeerProbeResult> {
  const sizes = ECHO_SIZES[targetFamily(target)];
  const underlay = await probeUnderlay(pinger, target.publicIP, settings, sizes.small);
  const expected = settings.underlayMtu;
  const pathMtu: PathMtuObservation =
    underlay.received === 0 ? { status: "unknown", expected, why: "the peer does not answer" } : await probePathMtu(pinger, target.publicIP, settings, sizes);
  const overlay =
    target.overlayAddress === undefined
      ? undefined
      : underlay.received === 0
        ? ({ status: "blocked", why: "the peer does not answer on the underlay" } as const)
        : await probeOverlay(pinger, target.overlayAddress, settings, sizes);
  const observations: Observations = {
    underlay,
    pathMtu,
    overlay,
    encapsulation: target.encapsulation,
    overheadBytes: target.overheadBytes,
  };
  return { target, ...observations, verdict: judge(observations) };
}

async function probeUnderlay(pinger: Echoer, destination: string, settings: ProbeSettings, bytes: number): Promise<UnderlayObservation> {
  const outcomes: Promise<EchoOutcome>[] = [];
  for (let i = 0; i < settings.echoes; i++) {
    if (i > 0) await sleep(settings.echoIntervalMs);
    outcomes.push(pinger.echo({ destination, bytes, timeoutMs: settings.timeoutMs }));
  }
  const rttMicros = (await Promise.all(outcomes)).flatMap((outcome) => (outcome.kind === "reply" ? [outcome.rttMicros] : []));
  return { sent: settings.echoes, received: rttMicros.length, rttMicros };
}

async function probePathMtu(pinger: Echoer, destination: string, settings: ProbeSettings, sizes: (typeof ECHO_SIZES)[IpFamily]): Promise<PathMtuObservation> {
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
  const largest = await largestThatFits(pinger, destination, Math.max(sizes.small, sizes.minMtu), expected, settings.timeoutMs);
  return largest === undefined
    ? { status: "unknown", expected, why: "no DF echo got through" }
    : { status: "smaller", expected, mtu: largest, source: "search" };
}

/** Binary search (DF echoes) for the largest size in [low, high) that crosses; `low` is known to. */
async function largestThatFits(pinger: Echoer, destination: string, low: number, high: number, timeoutMs: number): Promise<number | undefined> {
  let fits = low;
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

async function probeOverlay(pinger: Echoer, destination: string, settings: ProbeSettings, sizes: (typeof ECHO_SIZES)[IpFamily]): Promise<OverlayObservation> {
  const small = await pinger.echo({ destination, bytes: sizes.small, timeoutMs: settings.timeoutMs });
  if (small.kind !== "reply") return { status: "blocked", why: describeOutcome(small) };
  const bytes = Math.max(settings.overlayMtu, sizes.overhead);
  const full = await pinger.echo({ destination, bytes, timeoutMs: settings.timeoutMs });
  if (full.kind === "reply") return { status: "ok", bytes, rttMicros: full.rttMicros };
  return { status: "too-big", bytes, why: describeOutcome(full), ...(full.kind === "frag-needed" && full.mtu > 0 ? { mtu: full.mtu } : {}) };
}

export function describeOutcome(outcome: EchoOutcome): string {
  switch (outcome.kind) {
    case "reply":
      return `reply in ${outcome.rttMicros} µs`;
    case "frag-needed": {
      // ICMPv6 calls it Packet Too Big.
      const what = addressFamily(outcome.from) === 6 ? "packet too big" : "frag-needed";
      return outcome.mtu > 0 ? `${what} from ${outcome.from}: MTU ${outcome.mtu}` : `${what} from ${outcome.from}`;
    }
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
