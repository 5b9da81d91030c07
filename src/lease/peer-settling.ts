import { sameAttrs } from "./lease-value.js";
import type { Lease, PeerEvent } from "./types.js";

/**
 * Between the peer table and the backend: a new peer is handed over at once, but a change or a
 * removal only once it has held for a moment, and not at all when it is undone meanwhile. An
 * owner rewriting its overwritten key, or re-creating its deleted one, within that moment costs
 * its peers nothing; without it they dropped the routes for the ~50–100 ms in between (2–3 lost
 * pings at 10 ms). Pure: the caller owns the timer (flush after the settle time).
 */
export class PeerSettling {
  /** What the backend has been given, by key. */
  private readonly delivered = new Map<string, Lease>();
  /** Latest state of keys whose change or removal waits (undefined: removed). */
  private readonly pending = new Map<string, Lease | undefined>();

  /** Takes a batch from the table; returns what to deliver now. `waiting` when a flush is due. */
  offer(changes: readonly PeerEvent[]): { now: PeerEvent[]; waiting: boolean } {
    const now: PeerEvent[] = [];
    for (const change of changes) {
      const key = change.lease.key;
      if (change.kind === "added" && !this.delivered.has(key)) {
        this.delivered.set(key, change.lease);
        this.pending.delete(key);
        now.push(change);
      } else {
        this.pending.set(key, change.kind === "removed" ? undefined : change.lease);
      }
    }
    return { now, waiting: this.pending.size > 0 };
  }

  /** The net effect of everything waiting, against what was delivered. */
  flush(): PeerEvent[] {
    const events: PeerEvent[] = [];
    for (const [key, lease] of this.pending) {
      const previous = this.delivered.get(key);
      if (!lease) {
        if (previous) events.push({ kind: "removed", lease: previous });
        this.delivered.delete(key);
      } else if (!previous) {
        events.push({ kind: "added", lease });
        this.delivered.set(key, lease);
      } else if (!sameAttrs(previous.attrs, lease.attrs)) {
        events.push({ kind: "changed", lease, previous });
        this.delivered.set(key, lease);
      } else {
        this.delivered.set(key, lease);
      }
    }
    this.pending.clear();
    return events;
  }
}
