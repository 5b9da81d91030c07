import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { acquireLease } from "../../src/lease/acquire.js";
import { OutOfSubnetsError, PublicIPInUseError } from "../../src/lease/errors.js";
import { decodeLease } from "../../src/lease/stored-lease.js";
import { silentLogger } from "../../src/observe/logger.js";
import type { LeaseAttrs } from "../../src/lease/types.js";
import type { EtcdStore } from "../../src/store/etcd-store.js";
import { useEtcd } from "../support/etcd.js";

/**
 * IPv6-only acquisition (EnableIPv4: false) on a real etcd: flanneld's key `0.0.0.0-0&<v6>-<len>`
 * and value (PublicIP 0.0.0.0, BackendV6Data only), every host told apart by its PublicIPv6.
 */
const fixture = useEtcd();

const logger = silentLogger();
const v6only = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');

/** What flanneld's vxlan backend writes for an IPv6-only host: no BackendData, PublicIP its zero IP4. */
const attrs = (n: number): LeaseAttrs => ({
  publicIP: "0.0.0.0",
  publicIPv6: `fd00:77::${n.toString(16)}`,
  backendType: "vxlan",
  backendV6Data: { VNI: 1, VtepMAC: `aa:bb:cc:dd:06:${n.toString(16).padStart(2, "0")}` },
});
const flannelValue = (n: number) =>
  `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:77::${n.toString(16)}","BackendType":"vxlan",` +
  `"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:06:${n.toString(16).padStart(2, "0")}"}}`;

async function acquire(store: EtcdStore, n: number, extra: Partial<Parameters<typeof acquireLease>[0]> = {}) {
  return acquireLease({ store, config: v6only, attrs: attrs(n), ttlSeconds: 600, logger, ...extra });
}

describe("IPv6-only acquireLease against a real etcd", () => {
  it("creates 0.0.0.0-0&<ipv6>-64 with flanneld's value byte for byte, with a TTL", async () => {
    const store = fixture().newStore();
    const { lease, how } = await acquire(store, 1);
    expect(how).toBe("allocated");
    expect(lease.subnet).toBeUndefined();
    const v6 = lease.ipv6Subnet!;
    expect(v6.prefixLength).toBe(64);
    expect(v6only.ipv6!.network.contains(v6)).toBe(true);
    expect(lease.key).toMatch(/\/subnets\/0\.0\.0\.0-0&fd66:0:0:[0-9a-f]+::-64$/);
    const stored = await store.get(lease.key);
    expect(stored?.value).toBe(flannelValue(1));
    expect(await store.timeToLive(stored!.leaseId)).toBeGreaterThan(590);
    expect(decodeLease(stored!)).toMatchObject({ key: lease.key, attrs: attrs(1) });
  });

  it("tells hosts apart by PublicIPv6 (all say PublicIP 0.0.0.0): each gets its own subnet, and its own lease back", async () => {
    const store = fixture().newStore();
    const first = await acquire(store, 2);
    const second = await acquire(store, 3);
    // flanneld would "reuse" the first host's lease here: it matches PublicIP, 0.0.0.0 for both.
    expect(second.how).toBe("allocated");
    expect(second.lease.key).not.toBe(first.lease.key);
    expect(second.lease.ipv6Subnet!.overlaps(first.lease.ipv6Subnet!)).toBe(false);
    const again = await acquire(store, 2, { previousEtcdLeaseId: first.lease.etcdLeaseId });
    expect(again.how).toBe("reused-by-public-ip");
    expect(again.lease.key).toBe(first.lease.key);
    expect(again.lease.etcdLeaseId).not.toBe(first.lease.etcdLeaseId);
    expect((await store.get(first.lease.key))?.value).toBe(flannelValue(2));
    // Another host claiming our PublicIPv6 without proof is refused, naming --public-ipv6.
    const clash = acquireLease({ store, config: v6only, attrs: { ...attrs(2), backendV6Data: { VNI: 1, VtepMAC: "aa:bb:cc:dd:06:ee" } }, ttlSeconds: 600, logger });
    await expect(clash).rejects.toThrow(PublicIPInUseError);
    await expect(clash).rejects.toThrow(/PublicIPv6 fd00:77::2 is already leased by .*0\.0\.0\.0-0&.*--public-ipv6 fd00:77::2/);
  });

  it("prefers the previous IPv6 subnet from the subnet file (FLANNEL_IPV6_SUBNET alone)", async () => {
    const store = fixture().newStore();
    const previous = Ipv6Subnet.parse("fd66:0:0:4242::/64");
    const { lease, how } = await acquire(store, 4, { previousIpv6Subnet: previous });
    expect(how).toBe("previous-subnet");
    expect(lease.key).toBe(`${store.subnetsPrefix}0.0.0.0-0&fd66:0:0:4242::-64`);
    // Taken by another host since: a new one, never the other host's.
    const other = await acquire(store, 5, { previousIpv6Subnet: previous });
    expect(other.how).toBe("allocated");
    expect(other.lease.ipv6Subnet!.equals(previous)).toBe(false);
  });

  it("honours an IPv6-only reservation matched by PublicIPv6 and never gives it a TTL", async () => {
    const store = fixture().newStore();
    const key = `${store.subnetsPrefix}0.0.0.0-0&fd66:0:0:77::-64`;
    await store.put(key, '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:77::6"}');
    const { lease, how } = await acquire(store, 6);
    expect(how).toBe("reservation");
    expect(lease).toMatchObject({ key, reservation: true });
    const stored = await store.get(key);
    expect(stored?.leaseId).toBe("0");
    expect(stored?.value).toBe(flannelValue(6));
  });

  it("replaces its dual-stack lease when IPv4 is turned off, keeping the IPv6 subnet", async () => {
    const store = fixture().newStore();
    const dualKey = `${store.subnetsPrefix}10.66.9.0-24&fd66:0:0:99::-64`;
    // A live lease (an etcd lease attached): a reservation would be the operator's and left alone.
    await store.createIfAbsent(dualKey, '{"PublicIP":"192.168.77.7","PublicIPv6":"fd00:77::7","BackendType":"vxlan"}', await store.grantLease(600));
    const { lease } = await acquire(store, 7, { previousIpv6Subnet: Ipv6Subnet.parse("fd66:0:0:99::/64") });
    expect(lease.key).toBe(`${store.subnetsPrefix}0.0.0.0-0&fd66:0:0:99::-64`);
    expect(await store.get(dualKey)).toBeUndefined();
  });

  it("sits next to flanneld's IPv6-only leases and leftovers: their IPv6 subnets stay theirs", async () => {
    const store = fixture().newStore();
    const tiny = parseNetworkConfig(
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd67::/48","IPv6SubnetMin":"fd67:0:0:1::","IPv6SubnetMax":"fd67:0:0:4::","Backend":{"Type":"vxlan"}}',
    );
    // A flanneld host, a dual-stack leftover, and a malformed IPv6-only value (no PublicIPv6): all claim their subnet.
    await store.put(`${store.subnetsPrefix}0.0.0.0-0&fd67:0:0:1::-64`, '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:77::51","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"5a:fb:51:d3:e0:c0"}}');
    await store.put(`${store.subnetsPrefix}10.66.2.0-24&fd67:0:0:2::-64`, '{"PublicIP":"192.168.77.52","PublicIPv6":"fd00:77::52"}');
    await store.put(`${store.subnetsPrefix}0.0.0.0-0&fd67:0:0:3::-64`, '{"PublicIP":"0.0.0.0","PublicIPv6":null}');
    const { lease } = await acquireLease({ store, config: tiny, attrs: attrs(8), ttlSeconds: 60, logger });
    expect(lease.key).toBe(`${store.subnetsPrefix}0.0.0.0-0&fd67:0:0:4::-64`);
    const full = acquireLease({ store, config: tiny, attrs: attrs(9), ttlSeconds: 60, logger });
    await expect(full).rejects.toThrow(OutOfSubnetsError);
    await expect(full).rejects.toThrow(/^out of IPv6 subnets: all \/64 subnets of IPv6Network fd67::\/48 between IPv6SubnetMin fd67:0:0:1:: and IPv6SubnetMax fd67:0:0:4::/);
  });

  it("12 IPv6-only hosts racing for 7 subnets get 7 distinct keys and 5 out-of-subnets errors", async () => {
    const fx = fixture();
    const prefix = fx.newStore().subnetsPrefix.replace(/\/subnets\/$/, "");
    const racing = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd68::/61","IPv6SubnetLen":64,"Backend":{"Type":"vxlan"}}');
    const stores = Array.from({ length: 12 }, () => fx.newStore(prefix));
    const results = await Promise.allSettled(stores.map((s, i) => acquireLease({ store: s, config: racing, attrs: attrs(100 + i), ttlSeconds: 60, logger })));
    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.lease.key] : []));
    expect(won).toHaveLength(7);
    expect(new Set(won).size).toBe(7);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(OutOfSubnetsError);
    const listing = await stores[0]!.list(stores[0]!.subnetsPrefix);
    expect(listing.keys.map((k) => k.key).sort()).toEqual([...won].sort());
  });
});
