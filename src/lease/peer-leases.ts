import { errorMessage } from "../errors/error-message.js";
import type { StoredKey, WatchEvent } from "../store/records.js";
import { isJsonObject, readField } from "../codec/json-fields.js";
import { formatLeaseValue, sameAttrs } from "./lease-value.js";
import { decodeLease, readLeases, type MalformedLease } from "./stored-lease.js";
import type { Lease, LeaseAttrs, PeerEvent } from "./types.js";
import { carriesAddress, hostAddress } from "./host-address.js";

/** The own lease as the table needs it: the key, and (when known) what we wrote into it. */
export interface OwnLeaseRef {
  key: string;
  /** What we advertise; a stored value with other attrs is reported as altered. */
  attrs?: LeaseAttrs;
  /** The etcd lease our key is attached to; undefined for a reservation. */
  etcdLeaseId?: string;
}

/**
 * Our key holds something we did not write, with our PublicIP (or no readable one):
 * "malformed" (not a lease), "value-differs" (e.g. another VtepMAC), "foreign-etcd-lease"
 * (re-put on an etcd lease that is not ours: another host with our PublicIP). The owner decides.
 */
export interface OwnLeaseAltered {
  kind: "malformed" | "value-differs" | "foreign-etcd-lease";
  stored: StoredKey;
  problem: string;
}

/** A peer lease advertising our VtepMAC: two hosts with one state dir (a cloned image). */
export interface SharedVtepMac {
  mac: string;
  peer: Lease;
}

/** What one listing or one batch of watch events changed, as values for the caller to act on. */
export interface PeerLeasesUpdate {
  /** Peer changes in the order they were found: added, changed (attrs differ), removed. */
  changes: PeerEvent[];
  /** Why the own lease is lost (deleted, or taken over by another PublicIP); empty when it is not. */
  ownLeaseLost: string[];
  /** The own key is there but holds what we did not write. */
  ownLeaseAltered: OwnLeaseAltered[];
  /** Keys skipped because the key or the value is malformed (never the own key: see ownLeaseAltered). */
  malformed: MalformedLease[];
  /** Keys other than the own key that carry our PublicIP: never peers (ours, or a host sharing our address). */
  carryingOurIP: string[];
  /** Peers (added or changed in this update) whose VtepMAC is ours. */
  sharedVtepMac: SharedVtepMac[];
}

/** `holdRemovals`: keep peers a listing lacks or an event deletes (the network config is gone: etcd lost its data). */
export interface PeerLeasesPolicy {
  holdRemovals?: boolean;
}

/**
 * The other hosts' leases as last seen, and the diff each listing (`reset`) or batch of watch
 * events (`apply`) makes to them (flannel's pkg/lease Reset/Update). Pure: no I/O, no clock.
 * Never a peer: the own key, and any lease carrying our PublicIP (a reservation of ours in another
 * range, or the key a re-acquire is just creating), so no route to our own subnet appears.
 * It also checks the own key holds what we wrote: a listing checks who holds it, not only that it exists.
 */
export class PeerLeases {
  private readonly peers = new Map<string, Lease>();

  /**
   * `ownPublicIP`: our PublicIP, or in an IPv6-only network our PublicIPv6 (host-address.ts);
   * undefined: only the own key is excluded, and a takeover of it is not noticed.
   */
  constructor(private readonly ownPublicIP?: string) {}

  /** The peers known right now. */
  current(): Lease[] {
    return [...this.peers.values()];
  }

  /** Replaces everything with a full listing; `ownLeaseLost` says so when the own key is not in it. */
  reset(keys: readonly StoredKey[], own: OwnLeaseRef | undefined, policy: PeerLeasesPolicy = {}): PeerLeasesUpdate {
    const update = emptyUpdate();
    const ownStored = own ? keys.find((stored) => stored.key === own.key) : undefined;
    const { leases, malformed } = readLeases(keys.filter((stored) => stored !== ownStored));
    update.malformed.push(...malformed);
    const listed = new Map<string, Lease>();
    for (const lease of leases) {
      if (this.carriesOurIP(lease)) update.carryingOurIP.push(lease.key);
      else listed.set(lease.key, lease);
    }
    for (const [key, previous] of this.peers) {
      if (listed.has(key)) continue;
      if (policy.holdRemovals) listed.set(key, previous);
      else update.changes.push({ kind: "removed", lease: previous });
    }
    for (const [key, lease] of listed) {
      const previous = this.peers.get(key);
      if (!previous) update.changes.push({ kind: "added", lease });
      else if (!sameAttrs(previous.attrs, lease.attrs)) update.changes.push({ kind: "changed", lease, previous });
    }
    this.peers.clear();
    for (const [key, lease] of listed) this.peers.set(key, lease);
    if (own) {
      if (ownStored) this.checkOwn(update, ownStored, own);
      else update.ownLeaseLost.push("the lease key was deleted");
    }
    this.findSharedVtepMac(update, own);
    return update;
  }

  /** Applies watch events in order; a re-put with the same attrs (a renewal) is no change. */
  apply(events: readonly WatchEvent[], own: OwnLeaseRef | undefined, policy: PeerLeasesPolicy = {}): PeerLeasesUpdate {
    const update = emptyUpdate();
    for (const event of events) {
      if (own && event.key === own.key) {
        if (event.type === "delete") update.ownLeaseLost.push("the lease key was deleted");
        else this.checkOwn(update, event, own);
        continue;
      }
      const previous = this.peers.get(event.key);
      if (event.type === "delete") {
        if (previous && !policy.holdRemovals) this.remove(update, previous);
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
    this.findSharedVtepMac(update, own);
    return update;
  }

  /** Who holds our key and what it says: taken over (another PublicIP), or altered (ours, but not what we wrote). */
  private checkOwn(update: PeerLeasesUpdate, stored: StoredKey, own: OwnLeaseRef): void {
    let lease: Lease;
    try {
      lease = decodeLease(stored);
    } catch (error) {
      update.ownLeaseAltered.push({ kind: "malformed", stored, problem: errorMessage(error) });
      return;
    }
    if (this.ownPublicIP !== undefined && !carriesAddress(lease.attrs, this.ownPublicIP)) {
      update.ownLeaseLost.push(`the lease key was taken over by ${hostAddress(lease.attrs) ?? lease.attrs.publicIP}`);
      return;
    }
    if (own.attrs && !sameAttrs(own.attrs, lease.attrs)) {
      update.ownLeaseAltered.push({ kind: "value-differs", stored, problem: `it holds ${formatLeaseValue(lease.attrs)}, we advertise ${formatLeaseValue(own.attrs)}` });
      return;
    }
    // "0": made a reservation (weft reserve keeps our value); that is the operator's to decide.
    if (own.etcdLeaseId && stored.leaseId !== "0" && stored.leaseId !== own.etcdLeaseId) {
      update.ownLeaseAltered.push({
        kind: "foreign-etcd-lease",
        stored,
        problem: `it was re-put on etcd lease ${stored.leaseId}, ours is ${own.etcdLeaseId}: another host with PublicIP ${hostAddress(lease.attrs) ?? lease.attrs.publicIP}?`,
      });
    }
  }

  private findSharedVtepMac(update: PeerLeasesUpdate, own: OwnLeaseRef | undefined): void {
    const ours = vtepMacOf(own?.attrs);
    if (!ours) return;
    for (const change of update.changes) {
      if (change.kind === "removed") continue;
      if (vtepMacOf(change.lease.attrs) === ours) update.sharedVtepMac.push({ mac: ours, peer: change.lease });
    }
  }

  private carriesOurIP(lease: Lease): boolean {
    return this.ownPublicIP !== undefined && carriesAddress(lease.attrs, this.ownPublicIP);
  }

  private remove(update: PeerLeasesUpdate, previous: Lease): void {
    this.peers.delete(previous.key);
    update.changes.push({ kind: "removed", lease: previous });
  }
}

/** The VtepMAC a vxlan lease advertises (BackendData.VtepMAC, or BackendV6Data's when IPv6-only), lower-cased; undefined for other backends. */
function vtepMacOf(attrs: LeaseAttrs | undefined): string | undefined {
  const data = attrs?.backendData ?? attrs?.backendV6Data;
  if (!isJsonObject(data)) return undefined;
  const mac = readField(data, "VtepMAC");
  return typeof mac === "string" && mac !== "" ? mac.toLowerCase() : undefined;
}

function emptyUpdate(): PeerLeasesUpdate {
  return { changes: [], ownLeaseLost: [], ownLeaseAltered: [], malformed: [], carryingOurIP: [], sharedVtepMac: [] };
}
