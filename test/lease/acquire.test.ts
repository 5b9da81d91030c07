import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { acquireLease } from "../../src/lease/acquire.js";
import { OutOfSubnetsError, PublicIPInUseError } from "../../src/lease/errors.js";
import { silentLogger } from "../../src/observe/logger.js";
import { useEtcd } from "../support/etcd.js";
import type { EtcdStore } from "../../src/store/etcd-store.js";

const fixture = useEtcd();

const logger = silentLogger();
const config = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');
const attrs = (ip: string) => ({ publicIP: ip, publicIPv6: null, backendType: "alloc" });

async function acquire(store: EtcdStore, ip: string, extra: Partial<Parameters<typeof acquireLease>[0]> = {}) {
  return acquireLease({ store, config, attrs: attrs(ip), ttlSeconds: 600, logger, ...extra });
}

describe("acquireLease against a real etcd", () => {
  it("creates a lease key with flannel's value and a TTL", async () => {
    const store = fixture().newStore();
    const { lease, how } = await acquire(store, "192.168.77.1");
    expect(how).toBe("allocated");
    expect(lease.subnet!.prefixLength).toBe(24);
    expect(config.ipv4!.network.contains(lease.subnet!)).toBe(true);
    expect(lease.subnet!.network).toBeGreaterThanOrEqual(config.ipv4!.subnetMin);
    const stored = await store.get(lease.key);
    expect(stored?.value).toBe('{"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"alloc"}');
    expect(stored?.leaseId).not.toBe("0");
    const ttl = await store.timeToLive(stored!.leaseId);
    expect(ttl).toBeGreaterThan(590);
  });

  it("reuses the lease that holds our PublicIP when the state dir recorded its etcd lease, and revokes the old etcd lease", async () => {
    const store = fixture().newStore();
    const first = await acquire(store, "192.168.77.2");
    const second = await acquire(store, "192.168.77.2", { previousEtcdLeaseId: first.lease.etcdLeaseId });
    expect(second.how).toBe("reused-by-public-ip");
    expect(second.lease.subnet!.equals(first.lease.subnet!)).toBe(true);
    expect(second.lease.etcdLeaseId).not.toBe(first.lease.etcdLeaseId);
    expect(await store.timeToLive(first.lease.etcdLeaseId!)).toBeUndefined();
  });

  it("refuses a live lease with our PublicIP that nothing proves ours (a second host with the same --public-ip), touching nothing", async () => {
    const store = fixture().newStore();
    const first = await acquire(store, "192.168.77.12");
    const before = await store.list(store.subnetsPrefix);
    const refused = await acquire(store, "192.168.77.12").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PublicIPInUseError);
    expect((refused as Error).message).toMatch(/PublicIP 192\.168\.77\.12 is already leased by .*10\.66\.\d+\.0-24.*another host runs with --public-ip 192\.168\.77\.12/);
    // The first host's key and etcd lease are untouched: no revoke, no re-put.
    expect(await store.list(store.subnetsPrefix)).toEqual(before);
    expect(await store.timeToLive(first.lease.etcdLeaseId!)).toBeGreaterThan(590);
    // Our subnet file naming it is proof enough (a restart after the state dir was lost).
    const restarted = await acquire(store, "192.168.77.12", { previousSubnet: first.lease.subnet });
    expect(restarted.how).toBe("reused-by-public-ip");
  });

  it("takes back its previous subnet when the key holds garbage (restart after the value was overwritten)", async () => {
    const store = fixture().newStore();
    const first = await acquire(store, "192.168.77.13");
    await store.put(first.lease.key, "garbage");
    const restarted = await acquire(store, "192.168.77.13", { previousSubnet: first.lease.subnet });
    expect(restarted.how).toBe("reclaimed-malformed");
    expect(restarted.lease.subnet!.equals(first.lease.subnet!)).toBe(true);
    const stored = await store.get(first.lease.key);
    expect(stored?.value).toBe('{"PublicIP":"192.168.77.13","PublicIPv6":null,"BackendType":"alloc"}');
    expect(stored?.leaseId).toBe(restarted.lease.etcdLeaseId);
  });

  it("prefers the previous subnet from the subnet file when it is free", async () => {
    const store = fixture().newStore();
    const previousSubnet = Ipv4Subnet.parse("10.66.200.0/24");
    const { lease, how } = await acquire(store, "192.168.77.3", { previousSubnet });
    expect(how).toBe("previous-subnet");
    expect(lease.subnet!.toString()).toBe("10.66.200.0/24");
    // Taken by someone else: a random one instead.
    const other = await acquire(store, "192.168.77.4", { previousSubnet });
    expect(other.lease.subnet!.toString()).not.toBe("10.66.200.0/24");
  });

  it("honours a reservation and never gives it a TTL", async () => {
    const store = fixture().newStore();
    const key = `${store.subnetsPrefix}10.66.250.0-24`;
    await store.put(key, '{"PublicIP":"192.168.77.5","PublicIPv6":null}');
    const { lease, how } = await acquire(store, "192.168.77.5");
    expect(how).toBe("reservation");
    expect(lease.reservation).toBe(true);
    expect(lease.subnet!.toString()).toBe("10.66.250.0/24");
    const stored = await store.get(key);
    expect(stored?.leaseId).toBe("0");
    // Our attrs were written into it, still without a lease.
    expect(stored?.value).toBe('{"PublicIP":"192.168.77.5","PublicIPv6":null,"BackendType":"alloc"}');
  });

  it("skips a malformed lease but does not hand out its subnet", async () => {
    const store = fixture().newStore();
    const small = parseNetworkConfig('{"Network":"10.67.0.0/28","SubnetLen":30,"Backend":{"Type":"alloc"}}');
    // 10.67.0.0/28 with /30: SubnetMin .4, SubnetMax .12 → three subnets.
    await store.put(`${store.subnetsPrefix}10.67.0.4-30`, "not json");
    await store.put(`${store.subnetsPrefix}10.67.0.8-30`, '{"PublicIP":42}');
    const { lease } = await acquireLease({ store, config: small, attrs: attrs("192.168.77.6"), ttlSeconds: 60, logger });
    expect(lease.subnet!.toString()).toBe("10.67.0.12/30");
    await expect(
      acquireLease({ store, config: small, attrs: attrs("192.168.77.7"), ttlSeconds: 60, logger }),
    ).rejects.toThrow(/out of subnets: .*Network 10\.67\.0\.0\/28 .*SubnetMin 10\.67\.0\.4 and SubnetMax 10\.67\.0\.12/);
  });

  it("20 hosts racing for 16 subnets get 16 distinct leases and 4 clean out-of-subnets errors", async () => {
    const store = fixture().newStore();
    // /20 with /24 subnets, SubnetMin..SubnetMax covering 16 subnets.
    const racing = parseNetworkConfig(
      '{"Network":"10.68.0.0/16","SubnetMin":"10.68.16.0","SubnetMax":"10.68.31.0","Backend":{"Type":"alloc"}}',
    );
    const stores = Array.from({ length: 20 }, () => fixture().newStore(store.prefix));
    const results = await Promise.allSettled(
      stores.map((s, i) => acquireLease({ store: s, config: racing, attrs: attrs(`192.168.78.${i + 1}`), ttlSeconds: 60, logger })),
    );
    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.lease.subnet!.toString()] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    expect(new Set(won).size).toBe(16);
    expect(won).toHaveLength(16);
    expect(lost).toHaveLength(4);
    for (const error of lost) expect(error).toBeInstanceOf(OutOfSubnetsError);
    const listing = await store.list(store.subnetsPrefix);
    expect(listing.keys).toHaveLength(16);
  });
});
