import { describe, expect, it, vi } from "vitest";
import { PeerWatcher } from "../../src/lease/watch.js";
import type { PeerEvent } from "../../src/lease/types.js";
import { silentLogger } from "../../src/observe/logger.js";
import { EtcdStore } from "../../src/store/etcd-store.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { useEtcd } from "../support/etcd.js";
import { EtcdServer, freeLoopbackPort } from "../../src/lab/etcd-server.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const fixture = useEtcd();

const value = (ip: string, mac = "aa:bb:cc:dd:ee:01") =>
  JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: "vxlan", BackendData: { VNI: 1, VtepMAC: mac } });

/** A watcher that records every batch; `until` waits for a predicate over everything seen. */
function recordingWatcher(store: EtcdStore, ownKey?: string, extra: { resyncs?: string[]; ownLost?: (why: string) => void; ownPublicIP?: string } = {}) {
  const seen: PeerEvent[] = [];
  const watcher = new PeerWatcher({
    store,
    logger: silentLogger(),
    ownLease: () => (ownKey ? { key: ownKey } : undefined),
    ownPublicIP: extra.ownPublicIP,
    onPeers: async (events) => {
      seen.push(...events);
    },
    onOwnLeaseLost: (why) => extra.ownLost?.(why),
    onResync: (reason) => extra.resyncs?.push(reason),
  });
  const until = (predicate: (events: PeerEvent[]) => boolean, timeoutMs = 5000) =>
    vi.waitFor(
      () => {
        if (!predicate(seen)) throw new Error(`timed out; saw ${JSON.stringify(seen.map((e) => [e.kind, e.lease.key]))}`);
      },
      { timeout: timeoutMs, interval: 20 },
    );
  return { watcher, seen, until };
}

describe("PeerWatcher against a real etcd", () => {
  it("delivers the snapshot, then added, changed and removed peers, never the own lease", async () => {
    const store = fixture().newStore();
    const own = `${store.subnetsPrefix}10.66.1.0-24`;
    await store.put(own, value("192.168.77.1"));
    await store.put(`${store.subnetsPrefix}10.66.2.0-24`, value("192.168.77.2"));
    const { watcher, seen, until } = recordingWatcher(store, own);
    await watcher.start();
    await until((events) => events.length === 1);
    expect(seen[0]).toMatchObject({ kind: "added", lease: { key: `${store.subnetsPrefix}10.66.2.0-24` } });

    await store.put(`${store.subnetsPrefix}10.66.3.0-24`, value("192.168.77.3"));
    await until((events) => events.length === 2);
    expect(seen[1]).toMatchObject({ kind: "added" });
    expect(seen[1]!.lease.subnet!.toString()).toBe("10.66.3.0/24");

    // A re-put with the same value (a renewal) is not a change; a new VtepMAC is.
    await store.put(`${store.subnetsPrefix}10.66.3.0-24`, value("192.168.77.3"));
    await store.put(`${store.subnetsPrefix}10.66.3.0-24`, value("192.168.77.3", "aa:bb:cc:dd:ee:03"));
    await until((events) => events.length === 3);
    expect(seen[2]).toMatchObject({ kind: "changed" });
    expect(seen[2]!.previous?.attrs.backendData).toEqual({ VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" });
    expect(seen[2]!.lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:03" });

    await store.delete(`${store.subnetsPrefix}10.66.2.0-24`);
    await until((events) => events.length === 4);
    expect(seen[3]).toMatchObject({ kind: "removed" });
    expect(seen[3]!.lease.attrs.publicIP).toBe("192.168.77.2");

    // Own-key changes are never peer events.
    await store.put(own, value("192.168.77.1", "aa:bb:cc:dd:ee:09"));
    await store.put(`${store.subnetsPrefix}10.66.4.0-24`, value("192.168.77.4"));
    await until((events) => events.length === 5);
    expect(seen[4]!.lease.subnet!.toString()).toBe("10.66.4.0/24");
    expect(watcher.current().map((lease) => lease.subnet!.toString()).sort()).toEqual(["10.66.3.0/24", "10.66.4.0/24"]);
    await watcher.stop();
  });

  it("handles every event of a multi-event response (a transaction)", async () => {
    const store = fixture().newStore();
    const { watcher, seen, until } = recordingWatcher(store);
    await watcher.start();
    // Three puts in one revision arrive as one watch response.
    const { Etcd3 } = await import("etcd3");
    const client = new Etcd3({ hosts: fixture().server.endpoint });
    await client
      .if(`${store.subnetsPrefix}10.66.9.0-24`, "Version", "==", 0)
      .then(
        client.put(`${store.subnetsPrefix}10.66.9.0-24`).value(value("192.168.77.9")),
        client.put(`${store.subnetsPrefix}10.66.10.0-24`).value(value("192.168.77.10")),
        client.put(`${store.subnetsPrefix}10.66.11.0-24`).value(value("192.168.77.11")),
      )
      .commit();
    client.close();
    await until((events) => events.length === 3);
    expect(new Set(seen.map((event) => event.lease.subnet!.toString()))).toEqual(new Set(["10.66.9.0/24", "10.66.10.0/24", "10.66.11.0/24"]));
    await watcher.stop();
  });

  it("skips malformed keys and values with a warning and keeps going", async () => {
    const store = fixture().newStore();
    await store.put(`${store.subnetsPrefix}garbage`, value("192.168.77.5"));
    await store.put(`${store.subnetsPrefix}10.66.5.0-24`, "{not json");
    const { watcher, seen, until } = recordingWatcher(store);
    await watcher.start();
    await store.put(`${store.subnetsPrefix}10.66.6.0-24`, '{"PublicIP":"300.1.1.1"}');
    await store.put(`${store.subnetsPrefix}10.66.7.0-24`, value("192.168.77.7"));
    await until((events) => events.length === 1);
    expect(seen[0]!.lease.subnet!.toString()).toBe("10.66.7.0/24");
    await watcher.stop();
  });

  it("tells the daemon when the own key is deleted or taken over, and never treats our PublicIP as a peer", async () => {
    const store = fixture().newStore();
    const own = `${store.subnetsPrefix}10.66.1.0-24`;
    await store.put(own, value("192.168.77.1"));
    // A reservation of ours in another range: ours, not a peer.
    await store.put(`${store.subnetsPrefix}10.66.99.0-24`, value("192.168.77.1"));
    const lost: string[] = [];
    const { watcher, seen, until } = recordingWatcher(store, own, { ownLost: (why) => lost.push(why), ownPublicIP: "192.168.77.1" });
    await watcher.start();
    await store.put(own, value("192.168.77.1", "aa:bb:cc:dd:ee:02")); // our own renewal/backend change: fine
    await store.put(own, value("192.168.77.50"));
    await expect.poll(() => lost, { timeout: 5000 }).toEqual(["the lease key was taken over by 192.168.77.50"]);
    await store.delete(own);
    await expect.poll(() => lost.length, { timeout: 5000 }).toBe(2);
    expect(lost[1]).toBe("the lease key was deleted");
    // A peer key rewritten with our PublicIP stops being a peer.
    await store.put(`${store.subnetsPrefix}10.66.7.0-24`, value("192.168.77.7"));
    await until((events) => events.length === 1);
    await store.put(`${store.subnetsPrefix}10.66.7.0-24`, value("192.168.77.1"));
    await until((events) => events.length === 2);
    expect(seen.map((event) => `${event.kind} ${event.lease.subnet}`)).toEqual(["added 10.66.7.0/24", "removed 10.66.7.0/24"]);
    await watcher.stop();
  });

  // The same story with IPv4-only keys and with dual-stack ones (10.66.20.0-24&fd66:0:0:14::-64, PublicIPv6 set).
  const compactionCases = [
    { family: "IPv4", name: (third: number) => `10.66.${third}.0-24`, leaseValue: value, ipv6: (_third: number): string | undefined => undefined },
    {
      family: "dual-stack",
      name: (third: number) => `10.66.${third}.0-24&fd66:0:0:${third.toString(16)}::-64`,
      leaseValue: (ip: string, mac?: string) => value(ip, mac).replace('"PublicIPv6":null', `"PublicIPv6":"fd00:77::${ip.split(".")[3]}"`),
      ipv6: (third: number): string | undefined => `fd66:0:0:${third.toString(16)}::/64`,
    },
  ];
  it.each(compactionCases)("re-lists after compaction and reports attrs that changed meanwhile ($family keys)", async ({ family, name, leaseValue, ipv6 }) => {
    const proxy = await TcpProxy.start(fixture().server.options.clientPort);
    const prefix = `/weft-test-compact-${family}/network`;
    const writer = fixture().newStore(prefix);
    const store = new EtcdStore({ endpoints: [proxy.endpoint], prefix, callTimeoutMs: 2000 });
    try {
      await writer.put(`${writer.subnetsPrefix}${name(20)}`, leaseValue("192.168.77.20"));
      await writer.put(`${writer.subnetsPrefix}${name(21)}`, leaseValue("192.168.77.21"));
      const resyncs: string[] = [];
      const { watcher, seen, until } = recordingWatcher(store, undefined, { resyncs });
      await watcher.start();
      await until((events) => events.length === 2);

      // Partition the watcher from etcd, change things, and compact past the changes.
      proxy.cut();
      await writer.put(`${writer.subnetsPrefix}${name(21)}`, leaseValue("192.168.77.21", "aa:bb:cc:dd:ee:21"));
      await writer.delete(`${writer.subnetsPrefix}${name(20)}`);
      await writer.put(`${writer.subnetsPrefix}${name(22)}`, leaseValue("192.168.77.22"));
      const { Etcd3 } = await import("etcd3");
      const client = new Etcd3({ hosts: fixture().server.endpoint });
      const head = await client.get("x").exec();
      await client.kv.compact({ revision: head.header.revision, physical: true });
      client.close();
      proxy.restore();

      await until((events) => events.length >= 5, 20_000);
      const kinds = seen.slice(2).map((event) => `${event.kind} ${event.lease.subnet}`).sort();
      expect(kinds).toEqual(["added 10.66.22.0/24", "changed 10.66.21.0/24", "removed 10.66.20.0/24"]);
      expect(watcher.current().map((lease) => lease.subnet!.toString()).sort()).toEqual(["10.66.21.0/24", "10.66.22.0/24"]);
      // Each peer keeps its IPv6 subnet and PublicIPv6 through the re-listing.
      for (const event of seen.slice(2)) {
        const third = Number(event.lease.subnet!.toString().split(".")[2]);
        expect(event.lease.ipv6Subnet?.toString()).toBe(ipv6(third));
        expect(event.lease.attrs.publicIPv6).toBe(ipv6(third) === undefined ? null : `fd00:77::${third}`);
      }
      // The watch coming back re-lists at once ("reconnected"); if etcd3's own re-created watch
      // reports the compaction first, that re-lists too. Either way one listing repairs it all.
      expect(resyncs.some((reason) => reason === "compacted" || reason === "reconnected")).toBe(true);
      await watcher.stop();
    } finally {
      store.close();
      await proxy.close();
    }
  });

  it("after a partition, the re-listing checks who holds the own key: a takeover meanwhile is reported", async () => {
    const proxy = await TcpProxy.start(fixture().server.options.clientPort);
    const prefix = `/weft-test-takeover/network`;
    const writer = fixture().newStore(prefix);
    const store = new EtcdStore({ endpoints: [proxy.endpoint], prefix, callTimeoutMs: 2000 });
    try {
      const own = `${writer.subnetsPrefix}10.66.1.0-24`;
      await writer.put(own, value("192.168.77.1"));
      const lost: string[] = [];
      const resyncs: string[] = [];
      const { watcher } = recordingWatcher(store, own, { ownLost: (why) => lost.push(why), ownPublicIP: "192.168.77.1", resyncs });
      await watcher.start();
      proxy.cut();
      // Taken over and compacted away while we could not see it: only a listing can tell.
      await writer.put(own, value("192.168.77.50"));
      const { Etcd3 } = await import("etcd3");
      const client = new Etcd3({ hosts: fixture().server.endpoint });
      const head = await client.get("x").exec();
      await client.kv.compact({ revision: head.header.revision, physical: true });
      client.close();
      proxy.restore();
      await expect.poll(() => lost, { timeout: 20_000 }).toEqual(["the lease key was taken over by 192.168.77.50"]);
      await watcher.stop();
    } finally {
      store.close();
      await proxy.close();
    }
  });
});

describe("PeerWatcher and a cloned state dir", () => {
  it("logs an error naming both hosts when a peer advertises our VtepMAC", async () => {
    const store = fixture().newStore();
    const own = `${store.subnetsPrefix}10.66.1.0-24`;
    await store.put(own, value("192.168.77.1", "aa:bb:cc:dd:ee:01"));
    const lines: string[] = [];
    const { pino } = await import("pino");
    const { Writable } = await import("node:stream");
    const logger = pino(new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) }));
    const watcher = new PeerWatcher({
      store,
      logger,
      ownLease: () => ({ key: own, attrs: { publicIP: "192.168.77.1", publicIPv6: null, backendType: "vxlan", backendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" } } }),
      ownPublicIP: "192.168.77.1",
      onPeers: async () => undefined,
      onOwnLeaseLost: () => undefined,
    });
    await watcher.start();
    await store.put(`${store.subnetsPrefix}10.66.2.0-24`, value("192.168.77.2", "AA:BB:CC:DD:EE:01"));
    await expect.poll(() => lines.join(""), { timeout: 5000 }).toContain("peer 192.168.77.2 (");
    const line = JSON.parse(lines.find((text) => text.includes("advertises our VtepMAC"))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 50, peerPublicIP: "192.168.77.2", ownPublicIP: "192.168.77.1", vtepMAC: "aa:bb:cc:dd:ee:01", ownKey: own });
    expect(line.msg).toMatch(/advertises our VtepMAC aa:bb:cc:dd:ee:01 \(we are 192\.168\.77\.1, .*10\.66\.1\.0-24\): two hosts share one weft state dir/);
    await watcher.stop();
  });
});

describe("PeerWatcher when etcd comes back empty (its data dir lost)", () => {
  it("re-lists on reconnect: reports the config gone and the own key lost, keeps the peers, and sees the config back", async () => {
    /*
     *   watcher --(loopback)--> etcd :P   (stopped, data dir emptied, started again on :P)
     */
    const dataDir = await mkdtemp(join(tmpdir(), "weft-etcd-empty-"));
    const server = await EtcdServer.start({ dataDir, clientPort: await freeLoopbackPort(), peerPort: await freeLoopbackPort() });
    const prefix = "/weft-test-empty/network";
    const store = new EtcdStore({ endpoints: [server.endpoint], prefix, callTimeoutMs: 2000 });
    try {
      const own = `${store.subnetsPrefix}10.66.1.0-24`;
      await store.put(store.configKey, '{"Network":"10.66.0.0/16"}');
      await store.put(own, value("192.168.77.1"));
      await store.put(`${store.subnetsPrefix}10.66.2.0-24`, value("192.168.77.2"));
      const lost: string[] = [];
      const configs: (string | undefined)[] = [];
      const peers: PeerEvent[] = [];
      const watcher = new PeerWatcher({
        store,
        logger: silentLogger(),
        ownLease: () => ({ key: own }),
        ownPublicIP: "192.168.77.1",
        onPeers: async (events) => void peers.push(...events),
        onOwnLeaseLost: (why) => lost.push(why),
        onConfig: (config) => configs.push(config),
      });
      await watcher.start();
      await server.stopProcess();
      await rm(dataDir, { recursive: true, force: true });
      await server.launch();
      const restartedAt = Date.now();
      await expect.poll(() => lost, { timeout: 15_000 }).toEqual(["the lease key was deleted"]);
      const noticedMs = Date.now() - restartedAt;
      expect(noticedMs).toBeLessThan(10_000);
      expect(configs).toEqual(['{"Network":"10.66.0.0/16"}', undefined]);
      // The peer is held while the config is gone (no route torn down because etcd forgot).
      expect(peers.map((event) => event.kind)).toEqual(["added"]);
      expect(watcher.current().map((lease) => lease.subnet!.toString())).toEqual(["10.66.2.0/24"]);
      await store.put(store.configKey, '{"Network":"10.66.0.0/16"}');
      await expect.poll(() => configs.length, { timeout: 5000 }).toBe(3);
      await watcher.stop();
    } finally {
      store.close();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
