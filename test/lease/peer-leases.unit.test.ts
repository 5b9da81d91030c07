import { describe, expect, it } from "vitest";
import { PeerLeases, type OwnLeaseRef, type PeerLeasesUpdate } from "../../src/lease/peer-leases.js";
import { parseLeaseValue } from "../../src/lease/lease-value.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import type { StoredKey, WatchEvent } from "../../src/store/records.js";

const P = "/coreos.com/network/subnets/";
const OWN_KEY = `${P}10.66.1.0-24`;
/** The own lease known by its key only (no value check). */
const OWN: OwnLeaseRef = { key: OWN_KEY };
const OUR_IP = "192.168.77.1";

const value = (ip: string, mac = "aa:bb:cc:dd:ee:01") =>
  JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: mac } });
/** Every host's key on etcd lease 7 unless said otherwise (a new holder's is another). */
const key = (third: number, ip: string, mac?: string, leaseId = "7"): StoredKey => ({ key: `${P}10.66.${third}.0-24`, value: value(ip, mac), leaseId, modRevision: "1" });
const put = (third: number, ip: string, mac?: string, leaseId?: string): WatchEvent => ({ type: "put", ...key(third, ip, mac, leaseId) });
const del = (third: number): WatchEvent => ({ type: "delete", key: `${P}10.66.${third}.0-24`, value: "", leaseId: "0", modRevision: "2" });
const raw = (keyName: string, text: string): StoredKey => ({ key: `${P}${keyName}`, value: text, leaseId: "0", modRevision: "1" });

/** An update as short strings: "added 10.66.2.0/24 192.168.77.2", "lost: …", "malformed <key>", "ours <key>". */
function summary(update: PeerLeasesUpdate): string[] {
  return [
    ...update.changes.map((change) => `${change.kind} ${change.lease.subnet} ${change.lease.attrs.publicIP}${change.previous ? ` (was ${change.previous.attrs.publicIP})` : ""}`),
    ...update.ownLeaseLost.map((why) => `lost: ${why}`),
    ...update.ownLeaseAltered.map((altered) => `altered ${altered.kind} ${altered.stored.key.slice(P.length)}`),
    ...update.sharedVtepMac.map((shared) => `shared-mac ${shared.mac} ${shared.peer.key.slice(P.length)} younger: ${shared.younger}`),
    ...update.malformed.map((skipped) => `malformed ${skipped.key.slice(P.length)}`),
    ...update.carryingOurIP.map((ours) => `ours ${ours.slice(P.length)}`),
    ...update.overwritten.map((skipped) => `overwritten ${skipped.key.slice(P.length)}: ${skipped.problem}`),
    ...update.outsideNetwork.map((skipped) => `outside ${skipped.key.slice(P.length)}: ${skipped.problem}`),
  ];
}

describe("PeerLeases.reset (a full listing)", () => {
  it.each<[string, StoredKey[], StoredKey[], string[]]>([
    ["first listing: every other lease is added, never the own key", [], [key(1, OUR_IP), key(2, "192.168.77.2"), key(3, "192.168.77.3")], ["added 10.66.2.0/24 192.168.77.2", "added 10.66.3.0/24 192.168.77.3"]],
    ["a lease gone since the last listing is removed", [key(2, "192.168.77.2"), key(3, "192.168.77.3")], [key(1, OUR_IP), key(3, "192.168.77.3")], ["removed 10.66.2.0/24 192.168.77.2"]],
    ["changed attrs are a change; same attrs are none", [key(2, "192.168.77.2"), key(3, "192.168.77.3")], [key(1, OUR_IP), key(2, "192.168.77.2", "aa:bb:cc:dd:ee:02"), key(3, "192.168.77.3")], ["changed 10.66.2.0/24 192.168.77.2 (was 192.168.77.2)"]],
    ["a peer key now ours (on a new etcd lease: a re-acquire of ours) is removed and reported as ours", [key(2, "192.168.77.2")], [key(1, OUR_IP), key(2, OUR_IP, undefined, "8")], ["removed 10.66.2.0/24 192.168.77.2", "ours 10.66.2.0-24"]],
    ["a known peer's key turned to garbage: kept as it was, reported", [key(2, "192.168.77.2")], [key(1, OUR_IP), raw("10.66.2.0-24", "{garbage")], ['overwritten 10.66.2.0-24: /coreos.com/network/subnets/10.66.2.0-24: value is not JSON: "{garbage"']],
    ["a known peer's key re-put by hand (no etcd lease) with another host's value: kept as it was", [key(2, "192.168.77.2"), key(3, "192.168.77.3")], [key(1, OUR_IP), key(2, "192.168.77.3", undefined, "0"), key(3, "192.168.77.3")], ["overwritten 10.66.2.0-24: host 192.168.77.3's address re-put with no etcd lease (by hand: etcdctl put detaches the key from etcd lease 7 of 192.168.77.2), no host writes its lease that way"]],
    ["a known peer's VtepMAC changed by hand: kept as it was", [key(2, "192.168.77.2")], [key(1, OUR_IP), key(2, "192.168.77.2", "aa:bb:cc:dd:ee:66", "0")], ["overwritten 10.66.2.0-24: other attrs re-put with no etcd lease (by hand: etcdctl put detaches the key from etcd lease 7 of 192.168.77.2), no host writes its lease that way"]],
    ["a new holder on its own etcd lease (a takeover after a delete we missed): a change", [key(2, "192.168.77.2")], [key(1, OUR_IP), key(2, "192.168.77.9", undefined, "9")], ["changed 10.66.2.0/24 192.168.77.9 (was 192.168.77.2)"]],
    ["a reservation of ours in another range is never a peer", [], [key(1, OUR_IP), key(99, OUR_IP)], ["ours 10.66.99.0-24"]],
    ["malformed keys and values are skipped and reported", [], [key(1, OUR_IP), raw("garbage", value("192.168.77.5")), raw("10.66.5.0-24", "{not json"), key(7, "192.168.77.7")], ["added 10.66.7.0/24 192.168.77.7", "malformed garbage", "malformed 10.66.5.0-24"]],
    ["the own key missing from the listing: the own lease is lost", [], [key(2, "192.168.77.2")], ["added 10.66.2.0/24 192.168.77.2", "lost: the lease key was deleted"]],
    ["a malformed own key is still the own key: present, never a peer, reported as altered (not as a peer to skip)", [], [raw("10.66.1.0-24", "{not json")], ["altered malformed 10.66.1.0-24"]],
    ["the own key held by another PublicIP in a listing: taken over (a displaced host notices at resync)", [], [key(1, "192.168.77.50"), key(2, "192.168.77.2")], ["added 10.66.2.0/24 192.168.77.2", "lost: the lease key was taken over by 192.168.77.50"]],
  ])("%s", (_name, before, listing, expected) => {
    const table = new PeerLeases(OUR_IP);
    table.reset([key(1, OUR_IP), ...before], OWN);
    expect(summary(table.reset(listing, OWN))).toEqual(expected);
    const peers = table.current().map((lease) => lease.key);
    expect(peers).not.toContain(OWN_KEY);
  });

  it("without an own key nothing is reported lost; without our PublicIP only the own key is excluded", () => {
    const table = new PeerLeases();
    expect(summary(table.reset([key(1, OUR_IP), key(2, "192.168.77.2")], undefined))).toEqual(["added 10.66.1.0/24 192.168.77.1", "added 10.66.2.0/24 192.168.77.2"]);
  });
});

describe("PeerLeases.apply (watch events)", () => {
  const start = () => {
    const table = new PeerLeases(OUR_IP);
    table.reset([key(1, OUR_IP), key(2, "192.168.77.2")], OWN);
    return table;
  };

  it.each<[string, WatchEvent[], string[], string[]]>([
    ["a new key is added", [put(3, "192.168.77.3")], ["added 10.66.3.0/24 192.168.77.3"], ["10.66.2.0/24", "10.66.3.0/24"]],
    ["a re-put with the same value (a renewal) is no change", [put(2, "192.168.77.2")], [], ["10.66.2.0/24"]],
    ["a new VtepMAC is a change", [put(2, "192.168.77.2", "aa:bb:cc:dd:ee:09")], ["changed 10.66.2.0/24 192.168.77.2 (was 192.168.77.2)"], ["10.66.2.0/24"]],
    ["a deleted peer is removed", [del(2)], ["removed 10.66.2.0/24 192.168.77.2"], []],
    ["deleting a key never seen is nothing", [del(9)], [], ["10.66.2.0/24"]],
    ["every event of a multi-event response counts", [put(9, "192.168.77.9"), put(10, "192.168.77.10"), put(11, "192.168.77.11")], ["added 10.66.9.0/24 192.168.77.9", "added 10.66.10.0/24 192.168.77.10", "added 10.66.11.0/24 192.168.77.11"], ["10.66.2.0/24", "10.66.9.0/24", "10.66.10.0/24", "10.66.11.0/24"]],
    ["a peer key re-created with our PublicIP on a new etcd lease stops being a peer", [put(2, OUR_IP, undefined, "8")], ["removed 10.66.2.0/24 192.168.77.2", "ours 10.66.2.0-24"], []],
    ["a peer key with our PublicIP on the peer's etcd lease is an overwrite: the peer stays", [put(2, OUR_IP)], ["overwritten 10.66.2.0-24: it names host 192.168.77.1 on etcd lease 7 of 192.168.77.2"], ["10.66.2.0/24"]],
    ["a malformed value of a known peer is skipped; the peer stays as it was", [{ type: "put", ...raw("10.66.2.0-24", '{"PublicIP":"300.1.1.1"}') }], ['overwritten 10.66.2.0-24: /coreos.com/network/subnets/10.66.2.0-24: PublicIP "300.1.1.1" is not an IPv4 address'], ["10.66.2.0/24"]],
    ["a malformed value of an unknown key is skipped", [{ type: "put", ...raw("10.66.5.0-24", "{") }], ['malformed 10.66.5.0-24'], ["10.66.2.0/24"]],
    ["a foreign PublicIP put by hand into a peer's key: the peer stays", [put(2, "192.168.77.99", undefined, "0")], ["overwritten 10.66.2.0-24: host 192.168.77.99's address re-put with no etcd lease (by hand: etcdctl put detaches the key from etcd lease 7 of 192.168.77.2), no host writes its lease that way"], ["10.66.2.0/24"]],
    ["a peer's key given the value of a host that holds another key (key and value disagree): the peer stays", [put(3, "192.168.77.3", undefined, "3"), put(2, "192.168.77.3", undefined, "3")], ["added 10.66.3.0/24 192.168.77.3", "overwritten 10.66.2.0-24: it names host 192.168.77.3, which holds /coreos.com/network/subnets/10.66.3.0-24 (key and value disagree)"], ["10.66.2.0/24", "10.66.3.0/24"]],
    ["the peer rewrites its own value on its etcd lease: no change", [put(2, "192.168.77.99", undefined, "0"), put(2, "192.168.77.2")], ["overwritten 10.66.2.0-24: host 192.168.77.99's address re-put with no etcd lease (by hand: etcdctl put detaches the key from etcd lease 7 of 192.168.77.2), no host writes its lease that way"], ["10.66.2.0/24"]],
    ["our own renewal or backend change is never a peer event", [put(1, OUR_IP, "aa:bb:cc:dd:ee:02")], [], ["10.66.2.0/24"]],
    ["another PublicIP in the own key: taken over", [put(1, "192.168.77.50")], ["lost: the lease key was taken over by 192.168.77.50"], ["10.66.2.0/24"]],
    ["the own key deleted: lost", [del(1)], ["lost: the lease key was deleted"], ["10.66.2.0/24"]],
    ["a malformed value in the own key is not a takeover but an alteration", [{ type: "put", ...raw("10.66.1.0-24", "{not json") }], ["altered malformed 10.66.1.0-24"], ["10.66.2.0/24"]],
    ["each own-key event reports on its own, in order", [put(1, "192.168.77.50"), del(1)], ["lost: the lease key was taken over by 192.168.77.50", "lost: the lease key was deleted"], ["10.66.2.0/24"]],
  ])("%s", (_name, events, expected, peersAfter) => {
    const table = start();
    expect(summary(table.apply(events, OWN))).toEqual(expected);
    expect(table.current().map((lease) => lease.subnet!.toString())).toEqual(peersAfter);
  });

  it("without our PublicIP a takeover of the own key is not noticed (only deletion is)", () => {
    const table = new PeerLeases();
    table.reset([key(1, OUR_IP)], OWN);
    expect(summary(table.apply([put(1, "192.168.77.50"), del(1)], OWN))).toEqual(["lost: the lease key was deleted"]);
  });

  it("listing and events agree: reset after events reports only what changed meanwhile", () => {
    const table = start();
    table.apply([put(3, "192.168.77.3")], OWN);
    expect(summary(table.reset([key(1, OUR_IP), key(2, "192.168.77.2"), key(3, "192.168.77.3")], OWN))).toEqual([]);
  });
});

describe("PeerLeases: what is in our own key, and peers sharing our VtepMAC", () => {
  const ourValue = key(1, OUR_IP, "aa:bb:cc:dd:ee:01");
  const FULL: OwnLeaseRef = { key: OWN_KEY, attrs: parseLeaseValue(ourValue.value), etcdLeaseId: "7" };
  const start = () => {
    const table = new PeerLeases(OUR_IP);
    table.reset([ourValue, key(2, "192.168.77.2", "aa:bb:cc:dd:ee:02")], FULL);
    return table;
  };

  it.each<[string, WatchEvent[], string[]]>([
    ["our value re-put on our etcd lease (a renewal or our own rewrite): nothing", [put(1, OUR_IP, "aa:bb:cc:dd:ee:01")], []],
    ["a wrong VtepMAC in our key: altered", [put(1, OUR_IP, "aa:bb:cc:dd:ee:66")], ["altered value-differs 10.66.1.0-24"]],
    ["garbage in our key: altered", [{ type: "put", ...raw("10.66.1.0-24", "garbage") }], ["altered malformed 10.66.1.0-24"]],
    ["our value on another etcd lease: another host with our PublicIP", [{ ...put(1, OUR_IP, "aa:bb:cc:dd:ee:01"), leaseId: "8" }], ["altered foreign-etcd-lease 10.66.1.0-24"]],
    ["our value with no etcd lease (weft reserve kept it): the operator's reservation, nothing", [{ ...put(1, OUR_IP, "aa:bb:cc:dd:ee:01"), leaseId: "0" }], []],
    ["a new peer with our VtepMAC, written after our key: reported, the peer is the younger", [{ ...put(3, "192.168.77.3", "AA:BB:CC:DD:EE:01"), modRevision: "9" }], ["added 10.66.3.0/24 192.168.77.3", "shared-mac aa:bb:cc:dd:ee:01 10.66.3.0-24 younger: peer"]],
    ["a peer changing to our VtepMAC: reported", [{ ...put(2, "192.168.77.2", "aa:bb:cc:dd:ee:01"), modRevision: "9" }], ["changed 10.66.2.0/24 192.168.77.2 (was 192.168.77.2)", "shared-mac aa:bb:cc:dd:ee:01 10.66.2.0-24 younger: peer"]],
    ["our key rewritten after the peer's (we started later): we are the younger", [{ ...put(1, OUR_IP, "aa:bb:cc:dd:ee:01"), modRevision: "12" }, { ...put(3, "192.168.77.3", "aa:bb:cc:dd:ee:01"), modRevision: "10" }], ["added 10.66.3.0/24 192.168.77.3", "shared-mac aa:bb:cc:dd:ee:01 10.66.3.0-24 younger: us"]],
    ["the own key given a known peer's value: not a takeover, an alteration (key and value disagree)", [put(1, "192.168.77.2", "aa:bb:cc:dd:ee:02", "8")], ["altered value-differs 10.66.1.0-24"]],
    ["a foreign PublicIP put into our key by hand (no etcd lease): an alteration to rewrite, not a takeover", [put(1, "192.168.77.99", undefined, "0")], ["altered value-differs 10.66.1.0-24"]],
    ["another PublicIP in our key on its own etcd lease (a host took the subnet while etcd was empty): lost", [put(1, "192.168.77.50", undefined, "50")], ["lost: the lease key was taken over by 192.168.77.50"]],
  ])("%s", (_name, events, expected) => {
    expect(summary(start().apply(events, FULL))).toEqual(expected);
  });

  it("a listing checks the value of our key too", () => {
    const table = start();
    expect(summary(table.reset([key(1, OUR_IP, "aa:bb:cc:dd:ee:66"), key(2, "192.168.77.2", "aa:bb:cc:dd:ee:02")], FULL))).toEqual(["altered value-differs 10.66.1.0-24"]);
  });

  it("holdRemovals keeps peers a listing lacks or an event deletes, and still reports the own key lost", () => {
    const table = start();
    expect(summary(table.reset([], FULL, { holdRemovals: true }))).toEqual(["lost: the lease key was deleted"]);
    expect(summary(table.apply([del(2)], FULL, { holdRemovals: true }))).toEqual([]);
    expect(table.current().map((lease) => lease.subnet!.toString())).toEqual(["10.66.2.0/24"]);
    expect(summary(table.reset([ourValue], FULL))).toEqual(["removed 10.66.2.0/24 192.168.77.2"]);
  });
});

describe("PeerLeases in an IPv6-only network (keys 0.0.0.0-0&…, every PublicIP 0.0.0.0; hosts known by PublicIPv6)", () => {
  const v6Key = (n: number, ipv6: string): StoredKey => ({
    key: `${P}0.0.0.0-0&fd66:0:0:${n}::-64`,
    value: JSON.stringify({ PublicIP: "0.0.0.0", PublicIPv6: ipv6, BackendType: "vxlan", BackendV6Data: { VNI: 1, VtepMAC: `aa:bb:cc:dd:06:0${n}` } }),
    leaseId: "7",
    modRevision: "1",
  });
  const own: OwnLeaseRef = { key: `${P}0.0.0.0-0&fd66:0:0:1::-64` };
  const v6Summary = (update: PeerLeasesUpdate) => [
    ...update.changes.map((change) => `${change.kind} ${change.lease.ipv6Subnet} ${change.lease.attrs.publicIPv6}`),
    ...update.ownLeaseLost.map((why) => `lost: ${why}`),
    ...update.carryingOurIP.map((ours) => `ours ${ours.slice(P.length)}`),
    ...update.overwritten.map((skipped) => `overwritten ${skipped.key.slice(P.length)}: ${skipped.problem}`),
    ...update.outsideNetwork.map((skipped) => `outside ${skipped.key.slice(P.length)}: ${skipped.problem}`),
  ];

  it("other hosts are peers though they share PublicIP 0.0.0.0; one with our PublicIPv6 is ours; our key taken by another PublicIPv6 is lost", () => {
    const table = new PeerLeases("fd77::11");
    expect(v6Summary(table.reset([v6Key(1, "fd77::11"), v6Key(2, "fd77::12"), v6Key(3, "fd77::13"), v6Key(9, "fd77::11")], own))).toEqual([
      "added fd66:0:0:2::/64 fd77::12",
      "added fd66:0:0:3::/64 fd77::13",
      "ours 0.0.0.0-0&fd66:0:0:9::-64",
    ]);
    expect(v6Summary(table.reset([v6Key(1, "fd77::50"), v6Key(2, "fd77::12"), v6Key(3, "fd77::13")], own))).toEqual([
      "lost: the lease key was taken over by fd77::50",
    ]);
  });
});

describe("PeerLeases with the running network config", () => {
  it("a lease outside the running Network is never a peer (another config's), whatever its value; one inside is", () => {
    const table = new PeerLeases(OUR_IP, parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}'));
    const foreign: StoredKey = { ...key(5, "192.168.77.5"), key: `${P}10.77.5.0-24` };
    expect(summary(table.reset([key(1, OUR_IP), key(2, "192.168.77.2"), foreign], OWN))).toEqual([
      "added 10.66.2.0/24 192.168.77.2",
      "outside 10.77.5.0-24: 10.77.5.0/24 is outside Network 10.66.0.0/16",
    ]);
    expect(summary(table.apply([{ type: "put", ...foreign }], OWN))).toEqual(["outside 10.77.5.0-24: 10.77.5.0/24 is outside Network 10.66.0.0/16"]);
    expect(table.current().map((lease) => lease.key)).toEqual([`${P}10.66.2.0-24`]);
  });
});

describe("PeerLeases reports each overwrite of a peer's key once", () => {
  it("not again at the next listing, again after its holder rewrote the key and it was overwritten anew", () => {
    const table = new PeerLeases(OUR_IP);
    table.reset([key(1, OUR_IP), key(2, "192.168.77.2")], OWN);
    const garbage: WatchEvent = { type: "put", ...raw("10.66.2.0-24", "{garbage") };
    const count = (update: PeerLeasesUpdate) => update.overwritten.length;
    expect(count(table.apply([garbage], OWN))).toBe(1);
    expect(count(table.reset([key(1, OUR_IP), raw("10.66.2.0-24", "{garbage")], OWN))).toBe(0);
    expect(count(table.apply([put(2, "192.168.77.2")], OWN))).toBe(0);
    expect(count(table.apply([garbage], OWN))).toBe(1);
  });
});
