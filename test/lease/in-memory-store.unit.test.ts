import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { acquireLease, type AcquireRequest } from "../../src/lease/acquire.js";
import { OutOfSubnetsError } from "../../src/lease/errors.js";
import { InMemoryLeaseStore } from "../../src/lease/in-memory-lease-store.js";
import { LeaseKeeper } from "../../src/lease/renew.js";
import type { Lease, PeerEvent } from "../../src/lease/types.js";
import { PeerWatcher } from "../../src/lease/watch.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { silentLogger } from "../../src/observe/logger.js";

const logger = silentLogger();
const config = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');
const attrs = (ip: string) => ({ publicIP: ip, publicIPv6: null, backendType: "alloc" });
const value = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"alloc"}`;

function acquire(store: InMemoryLeaseStore, ip: string, extra: Partial<AcquireRequest> = {}) {
  return acquireLease({ store, config, attrs: attrs(ip), ttlSeconds: 600, logger, ...extra });
}

describe("InMemoryLeaseStore keeps etcd's semantics", () => {
  it("one revision per write, mod revisions for compare-and-swap, create-if-absent", async () => {
    const store = new InMemoryLeaseStore();
    const key = `${store.subnetsPrefix}10.66.1.0-24`;
    expect(await store.createIfAbsent(key, "a", undefined)).toBe(true);
    expect(await store.createIfAbsent(key, "b", undefined)).toBe(false);
    const stored = (await store.get(key))!;
    expect(stored.modRevision).toBe(store.currentRevision());
    expect(await store.replaceIfUnchanged(key, "c", undefined, "1")).toBe(false);
    expect(await store.replaceIfUnchanged(key, "c", undefined, stored.modRevision)).toBe(true);
    expect(await store.deleteIfUnchanged(key, stored.modRevision)).toBe(false);
    expect(await store.deleteIfUnchanged(key, (await store.get(key))!.modRevision)).toBe(true);
    // As etcd: an absent key has mod revision 0.
    expect(await store.replaceIfUnchanged(key, "d", undefined, "0")).toBe(true);
  });

  it("an expired lease deletes its keys; keep-alive and revoke on a gone lease say so", async () => {
    let now = 1_000_000;
    const store = new InMemoryLeaseStore("/p", () => now);
    const lease = await store.grantLease(10);
    await store.createIfAbsent("/p/subnets/10.66.1.0-24", "x", lease);
    now += 9_000;
    expect(await store.keepAliveOnce(lease)).toBe(10);
    now += 9_000;
    expect(await store.get("/p/subnets/10.66.1.0-24")).toBeDefined();
    now += 2_000;
    expect(await store.get("/p/subnets/10.66.1.0-24")).toBeUndefined();
    expect(await store.keepAliveOnce(lease)).toBeUndefined();
    await expect(store.revokeLease(lease)).rejects.toThrow(/requested lease not found/);
    await expect(store.createIfAbsent("/p/subnets/10.66.2.0-24", "x", lease)).rejects.toThrow(/requested lease not found/);
  });

  it("a watch replays from its revision; one from before the compaction ends as compacted", async () => {
    const store = new InMemoryLeaseStore();
    const k = (n: number) => `${store.subnetsPrefix}10.66.${n}.0-24`;
    await store.put(k(1), "a");
    const from = store.currentRevision();
    await store.put(k(2), "b");
    await store.put("/elsewhere", "c");
    const seen: string[] = [];
    await store.watchPrefix(store.subnetsPrefix, from, { onEvents: (events, revision) => seen.push(...events.map((e) => `${revision} ${e.type} ${e.key.slice(-12)}`)), onError: () => seen.push("error") });
    await expect.poll(() => seen).toEqual([`${from} put 10.66.1.0-24`, `${Number(from) + 1} put 10.66.2.0-24`]);
    store.compact();
    const errors: boolean[] = [];
    await store.watchPrefix(store.subnetsPrefix, from, { onEvents: () => undefined, onError: (_error, compacted) => errors.push(compacted) });
    await expect.poll(() => errors).toEqual([true]);
  });
});

describe("acquireLease on the in-memory store", () => {
  it.each<[string, (store: InMemoryLeaseStore) => Promise<void>, Partial<AcquireRequest>, string, string | RegExp]>([
    ["nothing there: a random free subnet", async () => undefined, {}, "allocated", /^10\.66\.\d+\.0\/24$/],
    ["our PublicIP already holds our previous subnet: reused", async (s) => s.put(`${s.subnetsPrefix}10.66.40.0-24`, value("192.168.77.1"), await s.grantLease(600)), { previousSubnet: Ipv4Subnet.parse("10.66.40.0/24") }, "reused-by-public-ip", "10.66.40.0/24"],
    ["our PublicIP on the etcd lease our state dir recorded: reused", async (s) => s.put(`${s.subnetsPrefix}10.66.42.0-24`, value("192.168.77.1"), await s.grantLease(600)), { previousEtcdLeaseId: "7587880000000000001" /* the fresh store's first grant */ }, "reused-by-public-ip", "10.66.42.0/24"],
    ["a reservation for our PublicIP: kept", async (s) => s.put(`${s.subnetsPrefix}10.66.41.0-24`, value("192.168.77.1")), {}, "reservation", "10.66.41.0/24"],
    ["the previous subnet is free: taken", async () => undefined, { previousSubnet: Ipv4Subnet.parse("10.66.200.0/24") }, "previous-subnet", "10.66.200.0/24"],
    ["the previous subnet is taken: another one", async (s) => s.put(`${s.subnetsPrefix}10.66.200.0-24`, value("192.168.77.9")), { previousSubnet: Ipv4Subnet.parse("10.66.200.0/24") }, "allocated", /^10\.66\.(?!200\.)\d+\.0\/24$/],
    ["our lease does not fit the config: deleted, then a new one", async (s) => s.put(`${s.subnetsPrefix}10.99.0.0-24`, value("192.168.77.1"), await s.grantLease(600)), {}, "allocated", /^10\.66\./],
  ])("%s", async (_name, prepare, extra, how, subnet) => {
    const store = new InMemoryLeaseStore();
    await prepare(store);
    const result = await acquire(store, "192.168.77.1", extra);
    expect(result.how).toBe(how);
    expect(result.lease.subnet!.toString()).toMatch(subnet);
    const stored = (await store.get(result.lease.key))!;
    expect(stored.value).toBe(value("192.168.77.1"));
    expect(stored.leaseId).toBe(how === "reservation" ? "0" : result.lease.etcdLeaseId);
    const ours = (await store.list(store.subnetsPrefix)).keys.filter((k) => k.value.includes('"192.168.77.1"'));
    expect(ours).toHaveLength(1);
  });

  it("reusing revokes the old store lease", async () => {
    const store = new InMemoryLeaseStore();
    const first = await acquire(store, "192.168.77.2");
    const second = await acquire(store, "192.168.77.2", { previousSubnet: first.lease.subnet });
    expect(second.lease.etcdLeaseId).not.toBe(first.lease.etcdLeaseId);
    expect(await store.timeToLive(first.lease.etcdLeaseId!)).toBeUndefined();
  });

  it("a lost race lists again and takes another subnet, revoking the unused store lease", async () => {
    const store = new InMemoryLeaseStore();
    let raced = false;
    const racing = Object.assign(Object.create(store) as InMemoryLeaseStore, {
      createIfAbsent: async (key: string, text: string, leaseId: string | undefined) => {
        if (!raced) {
          raced = true;
          await store.put(key, value("192.168.77.99")); // another host wins this subnet first
        }
        return store.createIfAbsent(key, text, leaseId);
      },
    });
    const granted: string[] = [];
    const grant = store.grantLease.bind(store);
    racing.grantLease = async (ttl: number) => {
      const id = await grant(ttl);
      granted.push(id);
      return id;
    };
    const result = await acquireLease({ store: racing, config, attrs: attrs("192.168.77.3"), ttlSeconds: 60, logger, random: () => 0 });
    expect(result.how).toBe("allocated");
    expect(granted).toHaveLength(2);
    expect(await store.timeToLive(granted[0]!)).toBeUndefined();
    expect((await store.list(store.subnetsPrefix)).keys).toHaveLength(2);
  });

  it("a full range is OutOfSubnetsError; an aborted signal ends the attempts with its reason", async () => {
    const store = new InMemoryLeaseStore();
    const tiny = parseNetworkConfig('{"Network":"10.67.0.0/28","SubnetLen":30,"Backend":{"Type":"alloc"}}');
    for (const last of [4, 8, 12]) await store.put(`${store.subnetsPrefix}10.67.0.${last}-30`, value(`192.168.78.${last}`));
    await expect(acquireLease({ store, config: tiny, attrs: attrs("192.168.77.4"), ttlSeconds: 60, logger })).rejects.toBeInstanceOf(OutOfSubnetsError);
    const stop = new AbortController();
    const reason = new Error("stopping");
    stop.abort(reason);
    await expect(acquire(store, "192.168.77.4", { signal: stop.signal })).rejects.toBe(reason);
  });
});

describe("LeaseKeeper on the in-memory store", () => {
  async function tracked(store: InMemoryLeaseStore, ttlSeconds: number) {
    const { lease } = await acquire(store, "192.168.77.5", { ttlSeconds });
    const log = { renewed: [] as Lease[], failed: 0, expired: [] as Lease[] };
    // Margin: TTL − 100 ms, so a renewal is due 100 ms after each one.
    const keeper = new LeaseKeeper({
      store,
      logger,
      renewMarginMs: ttlSeconds * 1000 - 100,
      retryMs: 50,
      onRenewed: (l) => log.renewed.push(l),
      onRenewFailed: () => log.failed++,
      onExpired: (l) => log.expired.push(l),
    });
    keeper.track(lease);
    return { lease, keeper, log };
  }

  it("renews on the same store lease, and keeps the key alive past its first TTL", async () => {
    const store = new InMemoryLeaseStore();
    const { lease, keeper, log } = await tracked(store, 1);
    await expect.poll(() => log.renewed.length, { timeout: 3000 }).toBeGreaterThanOrEqual(12);
    keeper.stop();
    expect(log.renewed.every((l) => l.etcdLeaseId === lease.etcdLeaseId)).toBe(true);
    expect((await store.get(lease.key))?.leaseId).toBe(lease.etcdLeaseId);
  });

  it("retries through an outage, then renews again", async () => {
    const store = new InMemoryLeaseStore();
    const { keeper, log } = await tracked(store, 2);
    store.setReachable(false);
    await expect.poll(() => log.failed, { timeout: 3000 }).toBeGreaterThanOrEqual(2);
    const renewedBefore = log.renewed.length;
    store.setReachable(true);
    await expect.poll(() => log.renewed.length, { timeout: 3000 }).toBeGreaterThan(renewedBefore);
    keeper.stop();
    expect(log.expired).toEqual([]);
  });

  it("reports a revoked lease as expired, once", async () => {
    const store = new InMemoryLeaseStore();
    const { lease, keeper, log } = await tracked(store, 2);
    await store.revokeLease(lease.etcdLeaseId!);
    await expect.poll(() => log.expired.map((l) => l.key), { timeout: 3000 }).toEqual([lease.key]);
    keeper.stop();
  });

  it("stop() during the retry back-off ends the retries", async () => {
    const store = new InMemoryLeaseStore();
    const { keeper, log } = await tracked(store, 2);
    store.setReachable(false);
    await expect.poll(() => log.failed, { timeout: 3000 }).toBeGreaterThanOrEqual(1);
    keeper.stop();
    const failed = log.failed;
    store.setReachable(true);
    // Nothing may happen after stop: this waits several retry intervals (50 ms) on purpose.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(log.failed).toBe(failed);
    expect(log.renewed.length).toBe(0);
  });
});

describe("PeerWatcher on the in-memory store", () => {
  function watching(store: InMemoryLeaseStore, ownKey?: string) {
    const seen: PeerEvent[] = [];
    const resyncs: string[] = [];
    const lost: string[] = [];
    const watcher = new PeerWatcher({
      store,
      logger,
      ownLease: () => (ownKey ? { key: ownKey } : undefined),
      ownPublicIP: "192.168.77.1",
      onPeers: async (events) => void seen.push(...events),
      onOwnLeaseLost: (why) => lost.push(why),
      onResync: (reason) => resyncs.push(reason),
    });
    const kinds = () => seen.map((event) => `${event.kind} ${event.lease.subnet}`);
    return { watcher, seen, resyncs, lost, kinds };
  }
  function countListings(store: InMemoryLeaseStore): { count: number } {
    const counter = { count: 0 };
    const list = store.list.bind(store);
    store.list = async (prefix: string) => {
      counter.count++;
      return list(prefix);
    };
    return counter;
  }
  const k = (store: InMemoryLeaseStore, third: number) => `${store.subnetsPrefix}10.66.${third}.0-24`;

  it("after a partition and a compaction it lists again and reports what changed meanwhile", async () => {
    const store = new InMemoryLeaseStore();
    await store.put(k(store, 20), value("192.168.77.20"));
    await store.put(k(store, 21), value("192.168.77.21"));
    const { watcher, resyncs, kinds } = watching(store);
    await watcher.start();
    await expect.poll(kinds).toEqual(["added 10.66.20.0/24", "added 10.66.21.0/24"]);
    store.pauseWatches(); // a partition: etcd takes the writes below, this watch sees none of them
    await store.delete(k(store, 20));
    await store.put(k(store, 21), JSON.stringify({ PublicIP: "192.168.77.21", PublicIPv6: null, BackendType: "alloc", BackendData: { x: 1 } }));
    await store.put(k(store, 22), value("192.168.77.22"));
    store.compact();
    store.resumeWatches();
    await expect.poll(() => kinds().slice(2).sort()).toEqual(["added 10.66.22.0/24", "changed 10.66.21.0/24", "removed 10.66.20.0/24"]);
    expect(resyncs).toEqual(["compacted"]);
    expect(watcher.current().map((lease) => lease.subnet!.toString()).sort()).toEqual(["10.66.21.0/24", "10.66.22.0/24"]);
    await watcher.stop();
    expect(store.openWatches()).toBe(0);
  });

  it("a broken stream is an error resync; while listing fails it backs off and keeps trying", async () => {
    const store = new InMemoryLeaseStore();
    const listings = countListings(store);
    const { watcher, resyncs, kinds } = watching(store);
    await watcher.start();
    store.setReachable(false);
    store.breakWatches();
    await expect.poll(() => listings.count, { timeout: 3000 }).toBeGreaterThanOrEqual(3); // the start, then two failed listings
    store.setReachable(true);
    await store.put(k(store, 30), value("192.168.77.30"));
    await expect.poll(kinds, { timeout: 5000 }).toEqual(["added 10.66.30.0/24"]);
    expect(resyncs.length).toBeGreaterThanOrEqual(1);
    expect(new Set(resyncs)).toEqual(new Set(["error"]));
    await watcher.stop();
  });

  it("stop() during the back-off returns at once and lists nothing more", async () => {
    const store = new InMemoryLeaseStore();
    const listings = countListings(store);
    const { watcher } = watching(store);
    await watcher.start();
    store.setReachable(false);
    store.breakWatches();
    await expect.poll(() => listings.count, { timeout: 3000 }).toBeGreaterThanOrEqual(3);
    const started = performance.now();
    await watcher.stop();
    expect(performance.now() - started).toBeLessThan(50);
    const after = listings.count;
    store.setReachable(true);
    // Nothing may happen after stop: longer than the next back-off step on purpose.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(listings.count).toBe(after);
  });

  it("the own key deleted while the watch was down is noticed at the resync", async () => {
    const store = new InMemoryLeaseStore();
    const own = k(store, 1);
    await store.put(own, value("192.168.77.1"));
    const { watcher, lost } = watching(store, own);
    await watcher.start();
    store.pauseWatches();
    await store.delete(own);
    store.compact();
    store.resumeWatches();
    await expect.poll(() => lost).toEqual(["the lease key was deleted"]);
    await watcher.stop();
  });
});
