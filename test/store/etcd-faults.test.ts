/*
 * EtcdStore against a real etcd behind loopback TCP proxies it can cut or slow down:
 *
 *   EtcdStore --> TcpProxy (cut / +delay each way) --> etcd 127.0.0.1:<random>
 *            \--> 127.0.0.1:<closed port>             (a dead member of a 2-endpoint list)
 */
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { acquireLease } from "../../src/lease/acquire.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { silentLogger } from "../../src/observe/logger.js";
import { EtcdStore } from "../../src/store/etcd-store.js";
import { useEtcd } from "../support/etcd.js";
import { TcpProxy } from "../support/tcp-proxy.js";

const fixture = useEtcd();

/** A loopback port with nothing listening: connections are refused, as to a killed member. */
async function deadEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 9}`;
}

describe("EtcdStore on a bad day", () => {
  it("tracks reachability: one transition to unreachable per outage, every failure counted, one back", async () => {
    const proxy = await TcpProxy.start(fixture().server.options.clientPort);
    const store = new EtcdStore({ endpoints: [proxy.endpoint], prefix: "/reach/network", callTimeoutMs: 1000 });
    const seen: string[] = [];
    let failures = 0;
    store.reachability.observe({ onFailure: () => failures++, onUnreachable: (down) => seen.push(`down ${down.what}`), onReachable: () => seen.push("up") });
    try {
      await store.put("/reach/network/config", "{}");
      expect(store.reachability.current()).toBeUndefined();
      proxy.cut();
      await expect(store.get("/reach/network/config")).rejects.toThrow(/etcd http:\/\/127\.0\.0\.1:\d+: get \/reach\/network\/config/);
      await expect(store.list("/reach/network/")).rejects.toThrow();
      expect(store.reachability.current()?.what).toBe("list");
      expect(failures).toBeGreaterThanOrEqual(2);
      proxy.restore();
      await expect.poll(() => store.get("/reach/network/config").then((kv) => kv?.value), { timeout: 10_000 }).toBe("{}");
      expect(store.reachability.current()).toBeUndefined();
      expect(seen).toEqual(["down get", "up"]);
      // A refusal is an answer: etcd is reachable.
      await expect(store.revokeLease("12345")).rejects.toThrow();
      expect(store.reachability.current()).toBeUndefined();
    } finally {
      store.close();
      await proxy.close();
    }
  });

  it("renews and writes through a live member when another of its endpoints is dead, every time", async () => {
    const store = new EtcdStore({ endpoints: [await deadEndpoint(), fixture().server.endpoint], prefix: "/failover/network", callTimeoutMs: 2000 });
    try {
      const leaseId = await store.grantLease(60);
      for (let round = 0; round < 10; round++) expect(await store.keepAliveOnce(leaseId)).toBe(60);
      // Unary calls fail over inside the client: the dead member never fails one.
      for (let round = 0; round < 10; round++) await store.put("/failover/network/config", `{"round":${round}}`);
    } finally {
      store.close();
    }
  });

  it("gets a lease from a slow etcd (1.5 s each way, 3 s round trips) with the default deadline and keepalive", async () => {
    const proxy = await TcpProxy.start(fixture().server.options.clientPort);
    proxy.delayMs = 1500;
    const store = new EtcdStore({ endpoints: [proxy.endpoint], prefix: "/slow/network" });
    try {
      const started = Date.now();
      const result = await acquireLease({
        store,
        config: parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}'),
        attrs: { publicIP: "192.168.77.1", publicIPv6: null, backendType: "alloc" },
        ttlSeconds: 60,
        logger: silentLogger(),
      });
      console.log(`slow etcd (3 s round trips): lease acquired in ${Date.now() - started} ms`);
      expect(result.how).toBe("allocated");
      // The connection outlives several keepalive periods at that latency, and renewals work.
      expect(await store.keepAliveOnce(result.lease.etcdLeaseId!)).toBe(60);
    } finally {
      store.close();
      await proxy.close();
    }
  }, 90_000);
});
