import { errorMessage } from "../errors/error-message.js";
import type { StoredKey, WatchEvent } from "../store/records.js";
import { sameAttrs } from "./lease-value.js";
import { decodeLease, readLeases, type MalformedLease } from "./stored-lease.js";
import type { Lease, PeerEvent } from "./types.js";

/** What one listing or one batch of watch events changed, as values for the caller to act on. */
export interface PeerLeasesUpdate {
  /** Peer changes in the order they were found: added, changed (attrs differ), removed. */
  changes: PeerEvent[];
  /** Why the own lease is lost, once per key or event that says so; empty when it is not. */
  ownLeaseLost: string[];
  /** Keys skipped because the key or the value is malformed. */
  malformed: MalformedLease[];
  /** Keys other than the own key that carry our PublicIP: never peers (ours, or a host sharing our address). */
  carryingOurIP: string[];
}

/**
 * The other hosts' leases as last seen, and the diff each listing (`reset`) or batch of watch
 * events (`apply`) makes to them (flannel's pkg/lease Reset/Update). Pure: no I/O, no clock.
 * Never a peer: the own key, and any lease carrying our PublicIP (a reservation of ours in another
 * range, or the key a re-acquire is just creating), so no route to our own subnet appears.
 */
export class PeerLeases {
  private readonly peers = new Map<string, Lease>();

  /** `ownPublicIP` undefined: only the own key is excluded, and a takeover of it is not noticed. */
  constructor(private readonly ownPublicIP?: string) {}

  /** The peers known right now. */
  current(): Lease[] {
    return [...this.peers.values()];
  }

  /** Replaces everything with a full listing; `ownLeaseLost` says so when the own key is not in it. */
  reset(keys: readonly StoredKey[], ownKey: string | undefined): PeerLeasesUpdate {
    const update = emptyUpdate();
    const { leases, malformed } = readLeases(keys);
    update.malformed.push(...malformed);
    const listed = new Map<string, Lease>();
    for (const lease of leases) {
      if (lease.key === ownKey) continue;
      if (this.carriesOurIP(lease)) update.carryingOurIP.push(lease.key);
      else listed.set(lease.key, lease);
    }
    for (const [key, previous] of this.peers) {
      if (!listed.has(key)) update.changes.push({ kind: "removed", lease: previous });
    }
    for (const [key, lease] of listed) {
      const previous = this.peers.get(key);
      if (!previous) update.changes.push({ kind: "added", lease });
      else if (!sameAttrs(previous.attrs, lease.attrs)) update.changes.push({ kind: "changed", lease, previous });
    }
    this.peers.clear();
    for (const [key, lease] of listed) this.peers.set(key, lease);
    if (ownKey && !keys.some((stored) => stored.key === ownKey)) update.ownLeaseLost.push("the lease key was deleted");
    return update;
  }

  /** Applies watch events in order; a re-put with the same attrs (a renewal) is no change. */
  apply(events: readonly WatchEvent[], ownKey: string | undefined): PeerLeasesUpdate {
    const update = emptyUpdate();
    for (const event of events) {
      if (event.key === ownKey) {
        const lost = event.type === "delete" ? "the lease key was deleted" : this.takenOverBy(event);
        if (lost) update.ownLeaseLost.push(lost);
        continue;
      }
      const previous = this.peers.get(event.key);
      if (event.type === "delete") {
        if (previous) this.remove(update, previous);
        continue;
      }
      let lease: Lease;
      try {
        lease = decodeLease(event);
      } catch (error) {
        update.malformed.push({ key: event.key, problem: errorMessage(error) });
        continue;
      }
      if (this.carriesOurIP(lease)) {
        update.carryingOurIP.push(lease.key);
        // A key that now carries our PublicIP is no longer a peer, whatever it was before.
        if (previous) this.remove(update, previous);
        continue;
      }
      this.peers.set(event.key, lease);
      if (!previous) update.changes.push({ kind: "added", lease });
      else if (!sameAttrs(previous.attrs, lease.attrs)) update.changes.push({ kind: "changed", lease, previous });
    }
    return update;
  }

  /** Someone wrote another PublicIP into our key: the subnet is theirs now. */
  private takenOverBy(event: WatchEvent): string | undefined {
    if (this.ownPublicIP === undefined) return undefined;
    let holder: string;
    try {
      holder = decodeLease(event).attrs.publicIP;
    } catch {
      return undefined; // a malformed value in our key is not a takeover; the next renewal rewrites nothing, reconcile keeps going
    }
    return holder === this.ownPublicIP ? undefined : `the lease key was taken over by ${holder}`;
  }

  private carriesOurIP(lease: Lease): boolean {
    return this.ownPublicIP !== undefined && lease.attrs.publicIP === this.ownPublicIP;
  }

  private remove(update: PeerLeasesUpdate, previous: Lease): void {
    this.peers.delete(previous.key);
    update.changes.push({ kind: "removed", lease: previous });
  }
}

function emptyUpdate(): PeerLeasesUpdate {
  return { changes: [], ownLeaseLost: [], malformed: [], carryingOurIP: [] };
}
