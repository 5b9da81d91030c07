import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { acquireLease } from "../../src/lease/acquire.js";
import { LeaseKeeper } from "../../src/lease/renew.js";
import type { Lease } from "../../src/lease/types.js";
import { silentLogger } from "../../src/observe/logger.js";
import { useEtcd } from "../support/etcd.js";

const fixture = useEtcd();

const logger = silentLogger();
const config = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');

describe("LeaseKeeper", () => {
  it("renews on the same etcd lease before expiry, leaving no orphaned lease", async () => {
    const store = fixture().newStore();
    const { lease } = await acquireLease({ store, config, attrs: { publicIP: "192.168.77.1", publicIPv6: null }, ttlSeconds: 12, logger });
    const renewed: Lease[] = [];
    // Margin 10.5 s of a 12 s TTL: the first renewal is due after about 1.5 s.
    const keeper = new LeaseKeeper({ store, logger, renewMarginMs: 10_500, onRenewed: (l) => renewed.push(l), onExpired: () => undefined });
    keeper.track(lease);
    await expect.poll(() => renewed.length, { timeout: 8000 }).toBeGreaterThanOrEqual(2);
    keeper.stop();
    expect(renewed.every((l) => l.etcdLeaseId === lease.etcdLeaseId)).toBe(true);
    const ttl = await store.timeToLive(lease.etcdLeaseId!);
    expect(ttl).toBeGreaterThan(9);
    expect(renewed.at(-1)!.expiresAt!.getTime()).toBeGreaterThan(lease.expiresAt!.getTime());
    // The key still carries the one lease we started with.
    expect((await store.get(lease.key))?.leaseId).toBe(lease.etcdLeaseId);
  });

  it("reports an expired etcd lease so the daemon can acquire again", async () => {
    const store = fixture().newStore();
    const { lease } = await acquireLease({ store, config, attrs: { publicIP: "192.168.77.2", publicIPv6: null }, ttlSeconds: 12, logger });
    await store.revokeLease(lease.etcdLeaseId!);
    let expired: Lease | undefined;
    const keeper = new LeaseKeeper({ store, logger, renewMarginMs: 11_500, onExpired: (l) => (expired = l) });
    keeper.track(lease);
    await expect.poll(() => expired?.key, { timeout: 5000 }).toBe(lease.key);
    keeper.stop();
  });

  it("never renews a reservation", async () => {
    const store = fixture().newStore();
    await store.put(`${store.subnetsPrefix}10.66.9.0-24`, '{"PublicIP":"192.168.77.3","PublicIPv6":null}');
    const { lease } = await acquireLease({ store, config, attrs: { publicIP: "192.168.77.3", publicIPv6: null }, ttlSeconds: 12, logger });
    let calls = 0;
    const keeper = new LeaseKeeper({ store, logger, renewMarginMs: 11_900, onRenewed: () => calls++, onExpired: () => calls++ });
    keeper.track(lease);
    // Asserts that nothing happens: a renewal would be due within 100 ms, so 500 ms is plenty.
    await new Promise((resolve) => setTimeout(resolve, 500));
    keeper.stop();
    expect(calls).toBe(0);
    expect((await store.get(lease.key))?.leaseId).toBe("0");
  });
});
