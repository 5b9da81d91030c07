import { errorMessage } from "../errors/error-message.js";
import type { StoredKey, WatchEvent } from "../store/records.js";
import { isJsonObject, readField } from "../codec/json-fields.js";
import { formatLeaseValue, sameAttrs } from "./lease-value.js";
import { decodeLease, readLeases, type MalformedLease } from "./stored-lease.js";
import type { Lease, LeaseAttrs, PeerEvent } from "./types.js";
import { carriesAddress, hostAddress } from "./host-address.js";
import type { NetworkConfig } from "../config/network-config.js";
import { outsideNetwork } from "./subnet-space.js";

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

/**
 * A peer lease advertising our VtepMAC: two hosts with one state dir (a cloned image). `younger`:
 * whose key was written later (the higher etcd mod revision: every host compares the same two
 * numbers, so exactly one side regenerates); undefined while our key's revision is unknown.
 */
export interface SharedVtepMac {
  mac: string;
  peer: Lease;
  younger?: "us" | "peer";
  /** Our key's mod revision as last seen (what a rewrite of it must still find). */
  ownModRevision?: string;
}

/** A key skipped, and why; for the log. */
export interface SkippedLease {
  key: string;
  problem: string;
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
  /**
   * Known peers whose key now holds what its holder would not write (garbage, a value put by
   * hand, another host's value): skipped, the peer kept as it last was (see overwriteProblem).
   * Each overwrite once: again only when it changes, or comes back after the key was fine.
   */
  overwritten: SkippedLease[];
  /** Leases outside the running Network (another config's): never peers, nothing is routed there. */
  outsideNetwork: SkippedLease[];
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
  /** Our key's mod revision as last listed or watched. */
  private ownModRevision: string | undefined;
  /** Known peers' keys held by an overwrite now, and why: each overwrite is reported once, again when it changes or after the key was fine. */
  private readonly overwrites = new Map<string, string>();

  /**
   * `ownPublicIP`: our PublicIP, or in an IPv6-only network our PublicIPv6 (host-address.ts);
   * undefined: only the own key is excluded, and a takeover of it is not noticed.
   * `network`: the running config; a lease outside its Network is never a peer.
   */
  constructor(
    private readonly ownPublicIP?: string,
    private readonly network?: NetworkConfig,
  ) {}

  /** The peers known right now. */
  current(): Lease[] {
    return [...this.peers.values()];
  }

  /** Replaces everything with a full listing; `ownLeaseLost` says so when the own key is not in it. */
  reset(keys: readonly StoredKey[], own: OwnLeaseRef | undefined, policy: PeerLeasesPolicy = {}): PeerLeasesUpdate {
    const update = emptyUpdate();
    const ownStored = own ? keys.find((stored) => stored.key === own.key) : undefined;
    const { leases, malformed } = readLeases(keys.filter((stored) => stored !== ownStored));
    const listed = new Map<string, Lease>();
    for (const skipped of malformed) {
      const previous = this.peers.get(skipped.key);
      if (!previous) update.malformed.push(skipped);
      else {
        this.noteOverwrite(update, skipped);
        listed.set(skipped.key, previous);
      }
    }
    for (const lease of leases) {
      const verdict = this.judge(lease, this.peers.get(lease.key), update);
      if (verdict) listed.set(lease.key, verdict);
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
    for (const key of this.overwrites.keys()) if (!listed.has(key)) this.overwrites.delete(key);
    if (own) {
      this.ownModRevision = ownStored?.modRevision;
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
        this.ownModRevision = event.type === "delete" ? undefined : event.modRevision;
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
        // A known peer's key turned to garbage: its holder still runs with what it last wrote.
        const skipped = { key: event.key, problem: errorMessage(error) };
        if (previous) this.noteOverwrite(update, skipped);
        else update.malformed.push(skipped);
        continue;
      }
      const verdict = this.judge(lease, previous, update);
      if (verdict === previous) continue;
      if (!verdict) {
        // Now ours, or outside the Network: no longer a peer, whatever it was before.
        if (previous) this.remove(update, previous);
        continue;
      }
      this.peers.set(event.key, verdict);
      if (!previous) update.changes.push({ kind: "added", lease: verdict });
      else if (!sameAttrs(previous.attrs, verdict.attrs)) update.changes.push({ kind: "changed", lease: verdict, previous });
    }
    this.findSharedVtepMac(update, own);
    return update;
  }

  /**
   * What a decoded lease is to this table: the lease to keep as the peer (`lease` itself, or
   * `previous` when the value is an overwrite, reported), or undefined when it is no peer (ours,
   * or outside the Network; reported).
   */
  private judge(lease: Lease, previous: Lease | undefined, update: PeerLeasesUpdate): Lease | undefined {
    const overwrite = previous && overwriteProblem(previous, lease, (address) => this.holderOf(address, lease.key));
    if (previous && overwrite) {
      this.noteOverwrite(update, { key: lease.key, problem: overwrite });
      return previous;
    }
    this.overwrites.delete(lease.key);
    if (this.carriesOurIP(lease)) {
      update.carryingOurIP.push(lease.key);
      return undefined;
    }
    const outside = this.network && outsideNetwork(lease, this.network);
    if (outside) {
      update.outsideNetwork.push({ key: lease.key, problem: outside });
      return undefined;
    }
    return lease;
  }

  private noteOverwrite(update: PeerLeasesUpdate, skipped: SkippedLease): void {
    if (this.overwrites.get(skipped.key) === skipped.problem) return;
    this.overwrites.set(skipped.key, skipped.problem);
    update.overwritten.push(skipped);
  }

  /** The key of a known peer (other than `exceptKey`) held by the host at `address`. */
  private holderOf(address: string, exceptKey: string): string | undefined {
    for (const [key, lease] of this.peers) {
      if (key !== exceptKey && carriesAddress(lease.attrs, address)) return key;
    }
    return undefined;
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
      const holder = hostAddress(lease.attrs) ?? lease.attrs.publicIP;
      // A host taking a subnet over creates the key on its own etcd lease; anything else was
      // written over our live lease, and moving away from it would cut our containers off.
      const overwrite = overwriteProblem({ ...lease, attrs: own.attrs ?? lease.attrs, ...etcdLease(own.etcdLeaseId) }, lease, (address) => this.holderOf(address, lease.key));
      if (overwrite) update.ownLeaseAltered.push({ kind: "value-differs", stored, problem: `it names host ${holder}: ${overwrite}` });
      else update.ownLeaseLost.push(`the lease key was taken over by ${holder}`);
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
      if (vtepMacOf(change.lease.attrs) !== ours) continue;
      const [mine, theirs] = [this.ownModRevision, change.lease.modRevision];
      const younger = mine === undefined || theirs === undefined ? undefined : BigInt(theirs) > BigInt(mine) ? "peer" : "us";
      update.sharedVtepMac.push({ mac: ours, peer: change.lease, younger, ownModRevision: mine });
    }
  }

  private carriesOurIP(lease: Lease): boolean {
    return this.ownPublicIP !== undefined && carriesAddress(lease.attrs, this.ownPublicIP);
  }

  private remove(update: PeerLeasesUpdate, previous: Lease): void {
    this.peers.delete(previous.key);
    this.overwrites.delete(previous.key);
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

/** A lease's etcd lease fields for an id (undefined: a reservation). */
function etcdLease(etcdLeaseId: string | undefined): Pick<Lease, "etcdLeaseId" | "reservation"> {
  return etcdLeaseId === undefined ? { reservation: true } : { etcdLeaseId, reservation: false };
}

/**
 * Why `next` in a key is not something the key's holder wrote over `previous`, or undefined when
 * it may be. A host writes its key on its own etcd lease: when it starts or re-acquires (a new
 * etcd lease), rewrites its value (the same one) and, for a new holder, creates the key anew. So
 * other attrs re-put with no etcd lease (what `etcdctl put` leaves: it detaches the key from its
 * lease), or another host's address on the same etcd lease, or the address of a host that holds
 * another key (key and value disagree) is not a change of the peer but an overwrite of its key.
 * Reservations are the operator's: a change of one is taken as it is.
 */
export function overwriteProblem(previous: Lease, next: Lease, holderOf: (address: string) => string | undefined): string | undefined {
  if (sameAttrs(previous.attrs, next.attrs) || previous.reservation) return undefined;
  const before = hostAddress(previous.attrs) ?? previous.attrs.publicIP;
  const after = hostAddress(next.attrs) ?? next.attrs.publicIP;
  if (next.reservation) {
    const what = after === before ? "other attrs" : `host ${after}'s address`;
    return `${what} re-put with no etcd lease (by hand: etcdctl put detaches the key from etcd lease ${previous.etcdLeaseId} of ${before}), no host writes its lease that way`;
  }
  if (after === before) return undefined;
  if (next.etcdLeaseId === previous.etcdLeaseId) return `it names host ${after} on etcd lease ${next.etcdLeaseId} of ${before}`;
  const other = holderOf(after);
  if (other !== undefined) return `it names host ${after}, which holds ${other} (key and value disagree)`;
  return undefined;
}

function emptyUpdate(): PeerLeasesUpdate {
  return { changes: [], ownLeaseLost: [], ownLeaseAltered: [], malformed: [], carryingOurIP: [], sharedVtepMac: [], overwritten: [], outsideNetwork: [] };
}
