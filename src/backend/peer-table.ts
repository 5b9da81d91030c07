import type { Logger } from "pino";
import { subnetKeyName } from "../lease/subnet-key.js";
import { carriesAddress } from "../lease/host-address.js";
import type { Lease, PeerEvent } from "../lease/types.js";

/**
 * The peer leases a backend knows, split into peers it serves and peers it refuses: the one
 * peer bookkeeping of every backend (kernel vxlan and host-gw, udp and userspace vxlan).
 *
 * - Every lease is kept (not only the usable ones), so a new own lease or a new route snapshot
 *   can re-decide all of them.
 * - Entries are keyed by the lease's subnet key name (`10.66.52.0-24`, dual-stack
 *   `10.66.52.0-24&fd66:0:0:6::-64`), so an IPv6 subnet is part of a peer's identity.
 * - The peer value `P` is the backend's own (an engine route, the objects a vxlan peer needs,
 *   later a WireGuard key); `S` is what the backend decides against (kernel backends: a route
 *   snapshot; nothing for the engine backends).
 * - Checks every backend shares, in this order: the own subnet is never a peer (silently: the
 *   watcher may still hold an older lease for it); a lease claiming our IPv6 subnet with another
 *   IPv4 subnet is refused (another host's, clashing); a lease advertising our own PublicIP is
 *   refused (its traffic would come back here); a lease of another backend type is refused
 *   (that host does not speak our data path). Then the backend's classify() decides.
 * - A refusal is logged once, at its level, and again only when its reason changes (kernel
 *   backends re-check refused peers every reconcile and must not repeat themselves); a refused
 *   peer that becomes usable is logged once at info.
 *
 * Not thread-safe in any sense that matters to JavaScript: callers serialise mutations (the
 * backends run them in their SerialQueue). Mutations return what happened to served peers.
 */

/** Why a lease cannot be served, and how loudly to say so the first time. */
export interface Refusal {
  refused: string;
  level: "warn" | "error";
}

/** What a mutation did to the served peers, in order: drop before accept for one key. */
export type PeerChange<P> =
  /** Newly served, or decided again (its value may be new). */
  | { kind: "accepted"; key: string; peer: P }
  /** No longer served: removed, refused, or now our own subnet. */
  | { kind: "dropped"; key: string; peer: P };

export interface PeerTableOptions<P, S> {
  /** The Backend.Type every peer must advertise; a lease without one is "udp", as flannel writes it. */
  backendType: string;
  /** The PublicIP this host advertises; in an IPv6-only network its PublicIPv6 (lease/host-address.ts). */
  ownPublicIP: string | undefined;
  logger: Logger;
  /** The backend's own checks for a lease that passed the shared ones: the peer to serve, or why not. */
  classify(lease: Lease, snapshot: S): P | Refusal;
}

export function isRefusal<P>(verdict: P | Refusal): verdict is Refusal {
  return typeof verdict === "object" && verdict !== null && "refused" in verdict;
}

/** The backend type a lease advertises: flanneld's udp backend leaves BackendType out. */
export function advertisedBackendType(lease: Lease): string {
  return lease.attrs.backendType || "udp";
}

/** The table key of a lease: its subnet key name, IPv6 part included. */
export function peerKey(lease: Lease): string {
  return subnetKeyName(lease);
}

/** How a peer is named to people: "10.66.5.0/24", dual-stack "10.66.5.0/24,fd66:0:0:6::/64", IPv6-only "fd66:0:0:6::/64". */
function peerLabel(lease: Lease): string {
  if (!lease.subnet) return lease.ipv6Subnet.toString();
  return lease.ipv6Subnet ? `${lease.subnet},${lease.ipv6Subnet}` : lease.subnet.toString();
}

/** Whether a lease names the subnet a host is known by (its IPv4 one; the IPv6 one when IPv6-only). */
function sharesPrimarySubnet(a: Lease, b: Lease): boolean {
  if (a.subnet && b.subnet) return a.subnet.equals(b.subnet);
  return !a.subnet && !b.subnet && a.ipv6Subnet.equals(b.ipv6Subnet);
}

export class PeerTable<P, S = void> {
  private readonly leases = new Map<string, Lease>();
  private readonly accepted = new Map<string, P>();
  /** Key → the refusal line last logged ("<subnet>: <reason>"). */
  private readonly refusals = new Map<string, string>();
  private ownLease: Lease | undefined;

  constructor(private readonly options: PeerTableOptions<P, S>) {}

  get leaseCount(): number {
    return this.leases.size;
  }

  get acceptedCount(): number {
    return this.accepted.size;
  }

  get refusedCount(): number {
    return this.refusals.size;
  }

  /** The served peers; a live view, do not mutate the table while iterating. */
  peers(): IterableIterator<P> {
    return this.accepted.values();
  }

  /** One line per refused peer, starting with its subnet: "10.66.3.0/24: <why>". */
  refusedReasons(): string[] {
    return [...this.refusals.values()];
  }

  /** A new own lease re-decides every peer: one of them may hold the subnet we now own. */
  setOwnLease(own: Lease, snapshot: S): PeerChange<P>[] {
    this.ownLease = own;
    return this.reclassify(snapshot);
  }

  /**
   * Applies watch events. A "changed" lease whose key moved (a previous lease of another
   * subnet key) drops the previous entry first.
   */
  apply(events: readonly PeerEvent[], snapshot: S): PeerChange<P>[] {
    const changes: PeerChange<P>[] = [];
    for (const event of events) {
      const key = peerKey(event.lease);
      const previousKey = event.previous && peerKey(event.previous);
      if (previousKey !== undefined && previousKey !== key) this.forget(previousKey, changes);
      if (event.kind === "removed") {
        this.forget(key, changes);
        continue;
      }
      this.leases.set(key, event.lease);
      this.consider(key, event.lease, snapshot, changes);
    }
    return changes;
  }

  /** Re-decides every lease against a fresh snapshot (links come and go). */
  reclassify(snapshot: S): PeerChange<P>[] {
    const changes: PeerChange<P>[] = [];
    for (const [key, lease] of this.leases) this.consider(key, lease, snapshot, changes);
    return changes;
  }

  private forget(key: string, changes: PeerChange<P>[]): void {
    this.leases.delete(key);
    this.drop(key, changes);
    this.refusals.delete(key);
  }

  private drop(key: string, changes: PeerChange<P>[]): void {
    const peer = this.accepted.get(key);
    if (peer === undefined) return;
    this.accepted.delete(key);
    changes.push({ kind: "dropped", key, peer });
  }

  private consider(key: string, lease: Lease, snapshot: S, changes: PeerChange<P>[]): void {
    if (this.ownLease && sharesPrimarySubnet(lease, this.ownLease)) {
      this.drop(key, changes);
      this.refusals.delete(key);
      return;
    }
    const verdict = this.verdict(lease, snapshot);
    if (isRefusal(verdict)) {
      this.drop(key, changes);
      const line = `${peerLabel(lease)}: ${verdict.refused}`;
      if (this.refusals.get(key) !== line) this.options.logger[verdict.level]({ lease: lease.key }, line);
      this.refusals.set(key, line);
      return;
    }
    if (this.refusals.delete(key)) this.options.logger.info({ lease: lease.key }, `${peerLabel(lease)}: the peer can be served now`);
    this.accepted.set(key, verdict);
    changes.push({ kind: "accepted", key, peer: verdict });
  }

  private verdict(lease: Lease, snapshot: S): P | Refusal {
    const { backendType, ownPublicIP } = this.options;
    const own = this.ownLease;
    // The IPv4 twin of this is the silent drop in consider(): a dual-stack key with our IPv6 subnet
    // beside another IPv4 subnet is another host's, and routing that IPv6 subnet to it would take
    // our own containers' addresses away from us (acquire.ts lostToClash makes the later writer move).
    if (own?.ipv6Subnet && lease.ipv6Subnet?.equals(own.ipv6Subnet)) {
      return {
        refused: `lease ${lease.key} claims our IPv6 subnet ${own.ipv6Subnet} (we hold ${own.key}): two hosts on one IPv6 subnet; refused until one of them moves`,
        level: "warn",
      };
    }
    if (ownPublicIP !== undefined && carriesAddress(lease.attrs, ownPublicIP)) {
      return {
        refused:
          `lease ${lease.key} advertises this host's own PublicIP ${ownPublicIP}, so its routes would point back here; ` +
          "it is a stale lease of this host (it expires by itself, or delete it) or another host advertises the same address (check --public-ip)",
        level: "warn",
      };
    }
    const type = advertisedBackendType(lease);
    if (type !== backendType) {
      return {
        refused: `lease ${lease.key} is of backend type "${type}", not "${backendType}": every host of a network must use the same backend`,
        level: "warn",
      };
    }
    return this.options.classify(lease, snapshot);
  }
}
