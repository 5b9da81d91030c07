import type { Logger } from "pino";
import type { Lease, PeerEvent } from "../lease/types.js";
import type { RouteState } from "../kernel/kernel.js";

/**
 * The peer leases a kernel backend knows, split into peers it programs and peers it refuses.
 * Every lease is kept (not only the usable ones), so a change of the own lease or of the links
 * can re-decide all of them. A refusal is logged once, and again only when its reason changes:
 * reconcile re-checks refused peers every few seconds and must not repeat itself.
 */

/** Why a lease cannot be programmed, and how loudly to say so the first time. */
export interface Refusal {
  refused: string;
  level: "warn" | "error";
}

export interface PeerSetOptions<P> {
  /** The Backend.Type every peer must advertise. */
  backendType: string;
  /** The PublicIP this host advertises: a peer lease with it would route back to ourselves. */
  ownPublicIP: string;
  logger: Logger;
  /** The backend's own checks: the peer to program, or why not. */
  classify(lease: Lease, routes: readonly RouteState[]): P | Refusal;
}

function isRefusal<P>(verdict: P | Refusal): verdict is Refusal {
  return typeof verdict === "object" && verdict !== null && "refused" in verdict;
}

export class PeerSet<P> {
  private readonly leases = new Map<string, Lease>();
  private readonly accepted = new Map<string, P>();
  /** Subnet → the reason last logged. */
  private readonly refusals = new Map<string, string>();
  private ownLease: Lease | undefined;

  constructor(private readonly options: PeerSetOptions<P>) {}

  get leaseCount(): number {
    return this.leases.size;
  }

  get acceptedCount(): number {
    return this.accepted.size;
  }

  get refusedCount(): number {
    return this.refusals.size;
  }

  peers(): IterableIterator<P> {
    return this.accepted.values();
  }

  /** One line per refused peer, starting with its subnet. */
  refusedReasons(): string[] {
    return [...this.refusals.values()];
  }

  /** A new own lease re-decides every peer: one of them may hold the subnet we now own. */
  setOwnLease(own: Lease, routes: readonly RouteState[]): void {
    this.ownLease = own;
    this.reclassify(routes);
  }

  apply(events: readonly PeerEvent[], routes: readonly RouteState[]): void {
    for (const event of events) {
      const key = event.lease.subnet.toString();
      if (event.kind === "removed") {
        this.leases.delete(key);
        this.accepted.delete(key);
        this.refusals.delete(key);
        continue;
      }
      this.leases.set(key, event.lease);
      this.consider(key, event.lease, routes);
    }
  }

  /** Re-decides every lease against fresh routes (links come and go). */
  reclassify(routes: readonly RouteState[]): void {
    for (const [key, lease] of this.leases) this.consider(key, lease, routes);
  }

  private consider(key: string, lease: Lease, routes: readonly RouteState[]): void {
    if (this.ownLease && lease.subnet.equals(this.ownLease.subnet)) {
      // Our own subnet (the watcher may still hold an older lease for it): never a peer.
      this.accepted.delete(key);
      this.refusals.delete(key);
      return;
    }
    const verdict = this.verdict(lease, routes);
    if (isRefusal(verdict)) {
      this.accepted.delete(key);
      const reason = `${key}: ${verdict.refused}`;
      if (this.refusals.get(key) !== reason) this.options.logger[verdict.level]({ lease: lease.key }, reason);
      this.refusals.set(key, reason);
      return;
    }
    if (this.refusals.delete(key)) this.options.logger.info({ lease: lease.key }, `${key}: the peer can be served now`);
    this.accepted.set(key, verdict);
  }

  private verdict(lease: Lease, routes: readonly RouteState[]): P | Refusal {
    const { backendType, ownPublicIP } = this.options;
    if (lease.attrs.publicIP === ownPublicIP) {
      return {
        refused:
          `lease ${lease.key} advertises this host's own PublicIP ${ownPublicIP}, so its routes would point back here; ` +
          "it is a stale lease of this host (it expires by itself, or delete it) or another host advertises the same address (check --public-ip)",
        level: "warn",
      };
    }
    const type = lease.attrs.backendType ?? "udp";
    if (type !== backendType) {
      return {
        refused: `lease ${lease.key} is of backend type "${type}", not "${backendType}": every host of a network must use the same backend`,
        level: "warn",
      };
    }
    return this.options.classify(lease, routes);
  }
}
