/**
 * What a person should do about one peer, from the three probes (pure; table-tested):
 *   underlay echo → is the host there at all;
 *   path MTU echo → does a DF packet of the interface MTU cross the underlay;
 *   overlay echo  → does a small, then a FLANNEL_MTU-sized, DF packet cross the encapsulation.
 */

export interface UnderlayObservation {
  sent: number;
  received: number;
  /** Round-trip times of the replies, in µs. */
  rttMicros: number[];
}

export type PathMtuObservation =
  | { status: "fits"; expected: number }
  /** `source`: a router's frag-needed, the kernel's cache, or a DF search because nothing answered (a black hole). */
  | { status: "smaller"; expected: number; mtu: number; source: "frag-needed" | "pmtu-cache" | "search" }
  | { status: "unknown"; expected: number; why: string };

export type OverlayObservation =
  | { status: "ok"; bytes: number; rttMicros: number }
  /** A small echo does not cross: the encapsulation itself does not get through. */
  | { status: "blocked"; why: string }
  /** Small echoes cross, FLANNEL_MTU-sized ones do not; `mtu` the inner size that fits when something said so. */
  | { status: "too-big"; bytes: number; why: string; mtu?: number };

export type Verdict =
  | { kind: "ok" }
  | { kind: "peer-down" }
  | { kind: "encapsulation-blocked"; encapsulation: string }
  /** `lowerTo`: the underlay MTU to configure (Backend.MTU), when known. */
  | { kind: "mtu-black-hole"; lowerTo: number | undefined; hostGw: boolean };

export type VerdictKind = Verdict["kind"];
export const VERDICT_KINDS: readonly VerdictKind[] = ["ok", "peer-down", "encapsulation-blocked", "mtu-black-hole"];

export interface Observations {
  underlay: UnderlayObservation;
  pathMtu: PathMtuObservation;
  /** undefined for host-gw: no encapsulation to cross. */
  overlay: OverlayObservation | undefined;
  /** "UDP 8472" — what carries the overlay, for the blocked verdict. */
  encapsulation: string;
  /** Interface MTU minus FLANNEL_MTU: the encapsulation's overhead. */
  overheadBytes: number;
}

export function judge(observed: Observations): Verdict {
  const { underlay, pathMtu, overlay } = observed;
  if (underlay.received === 0) return { kind: "peer-down" };
  if (!overlay) {
    // host-gw: routers answer frag-needed and PMTU discovery works; only a silent path is a black hole.
    if (pathMtu.status === "smaller" && pathMtu.source === "search") return { kind: "mtu-black-hole", lowerTo: pathMtu.mtu, hostGw: true };
    return { kind: "ok" };
  }
  if (overlay.status === "blocked") return { kind: "encapsulation-blocked", encapsulation: observed.encapsulation };
  if (overlay.status === "too-big") {
    const lowerTo = pathMtu.status === "smaller" ? pathMtu.mtu : overlay.mtu !== undefined && overlay.mtu > 0 ? overlay.mtu + observed.overheadBytes : undefined;
    return { kind: "mtu-black-hole", lowerTo, hostGw: false };
  }
  return { kind: "ok" };
}

export function formatVerdict(verdict: Verdict): string {
  switch (verdict.kind) {
    case "ok":
      return "ok";
    case "peer-down":
      return "peer down";
    case "encapsulation-blocked":
      return `encapsulation blocked (underlay answers, overlay does not: ${verdict.encapsulation} filtered?)`;
    case "mtu-black-hole": {
      const setting = verdict.hostGw ? "the MTU of docker0 (dockerd --mtu)" : "Backend.MTU";
      return verdict.lowerTo === undefined ? `MTU black hole: lower ${setting}` : `MTU black hole: lower ${setting} to ${verdict.lowerTo}`;
    }
  }
}
