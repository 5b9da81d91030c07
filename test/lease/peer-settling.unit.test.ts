import { describe, expect, it } from "vitest";
import { PeerSettling } from "../../src/lease/peer-settling.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import type { Lease, PeerEvent } from "../../src/lease/types.js";

const lease = (third: number, mac = "aa:bb:cc:dd:ee:01"): Lease => ({
  subnet: Ipv4Subnet.parse(`10.66.${third}.0/24`),
  key: `/coreos.com/network/subnets/10.66.${third}.0-24`,
  attrs: { publicIP: `192.168.77.${third}`, publicIPv6: null, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: mac } },
  reservation: false,
});
const added = (third: number, mac?: string): PeerEvent => ({ kind: "added", lease: lease(third, mac) });
const changed = (third: number, mac: string, was?: string): PeerEvent => ({ kind: "changed", lease: lease(third, mac), previous: lease(third, was) });
const removed = (third: number, mac?: string): PeerEvent => ({ kind: "removed", lease: lease(third, mac) });
const text = (events: PeerEvent[]) => events.map((event) => `${event.kind} ${event.lease.subnet} ${String((event.lease.attrs.backendData as { VtepMAC: string }).VtepMAC)}`);

describe("PeerSettling", () => {
  it.each<[string, PeerEvent[][], string[], string[]]>([
    ["a new peer goes at once, nothing waits", [[added(2)]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], []],
    ["a removal waits, then goes", [[added(2)], [removed(2)]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], ["removed 10.66.2.0/24 aa:bb:cc:dd:ee:01"]],
    ["deleted and re-created with the same value: nothing reaches the backend", [[added(2)], [removed(2)], [added(2)]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], []],
    ["overwritten and rewritten by its owner: nothing", [[added(2)], [changed(2, "02:00:00:00:00:01")], [changed(2, "aa:bb:cc:dd:ee:01", "02:00:00:00:00:01")]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], []],
    ["a change that holds goes as one change from what was delivered", [[added(2)], [changed(2, "aa:bb:cc:dd:ee:09")]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], ["changed 10.66.2.0/24 aa:bb:cc:dd:ee:09"]],
    ["deleted and re-created with another value: one change", [[added(2)], [removed(2)], [added(2, "aa:bb:cc:dd:ee:09")]], ["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"], ["changed 10.66.2.0/24 aa:bb:cc:dd:ee:09"]],
  ])("%s", (_name, batches, now, flushed) => {
    const settling = new PeerSettling();
    const immediate = batches.flatMap((batch) => settling.offer(batch).now);
    expect(text(immediate)).toEqual(now);
    expect(text(settling.flush())).toEqual(flushed);
    expect(settling.flush()).toEqual([]);
  });

  it("a removal that went is a new peer when it comes back", () => {
    const settling = new PeerSettling();
    settling.offer([added(2)]);
    settling.offer([removed(2)]);
    settling.flush();
    expect(text(settling.offer([added(2)]).now)).toEqual(["added 10.66.2.0/24 aa:bb:cc:dd:ee:01"]);
  });
});
