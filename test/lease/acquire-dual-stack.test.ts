import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet, formatIpv6 } from "../../src/net/ipv6.js";
import { acquireLease } from "../../src/lease/acquire.js";
import { OutOfSubnetsError } from "../../src/lease/errors.js";
import { decodeLease } from "../../src/lease/stored-lease.js";
import { silentLogger } from "../../src/observe/logger.js";
import type { LeaseAttrs } from "../../src/lease/types.js";
import type { EtcdStore } from "../../src/store/etcd-store.js";
import { useEtcd } from "../support/etcd.js";

/** Dual-stack acquisition on a real etcd: one key for both families, flanneld's exact JSON. */
const fixture = useEtcd();

const logger = silentLogger();
const dual = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');
const ipv4Only = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}');

/** What flanneld's vxlan backend writes for a dual-stack host: both VtepMACs, PublicIPv6 as a string. */
const attrs = (n: number): LeaseAttrs => ({
  publicIP: `192.168.77.${n}`,
  publicIPv6: `fd00:77::${n.toString(16)}`,
  backendType: "vxlan",
  backendData: { VNI: 1, VtepMAC: `aa:bb:cc:dd:04:${n.toString(16).padStart(2, "0")}` },
  backendV6Data: { VNI: 1, VtepMAC: `aa:bb:cc:dd:06:${n.toString(16).padStart(2, "0")}` },
});
const flannelValue = (n: number) => {
  const mac = n.toString(16).padStart(2, "0");
  return (
    `{"PublicIP":"192.168.77.${n}","PublicIPv6":"fd00:77::${n.toString(16)}","BackendType":"vxlan",` +
    `"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:04:${mac}"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:06:${mac}"}}`
  );
};

async function acquire(store: EtcdStore, n: number, extra: Partial<Parameters<typeof acquireLease>[0]> = {}) {
  return acquireLease({ store, config: dual, attrs: attrs(n), ttlSeconds: 600, logger, ...extra });
}

describe("dual-stack acquireLease against a real etcd", () => {
  it("creates one key naming both subnets, flanneld's value byte for byte, with a TTL", async () => {
    const store = fixture().newStore();
    const { lease, how } = await acquire(store, 1);
    expect(how).toBe("allocated");
    const v6 = lease.ipv6Subnet!;
    expect(v6.prefixLength).toBe(64);
    expect(dual.ipv6!.network.contains(v6)).toBe(true);
    expect(v6.network).toBeGreaterThanOrEqual(dual.ipv6!.subnetMin);
    expect(lease.key).toBe(`${store.subnetsPrefix}${formatIpv4Key(lease.subnet!)}&${formatIpv6(v6.network)}-64`);
    expect(lease.key).toMatch(/\/subnets\/10\.66\.\d+\.0-24&fd66:0:0:[0-9a-f]+::-64$/);
    const stored = await store.get(lease.key);
    expect(stored?.value).toBe(flannelValue(1));
    expect(await store.timeToLive(stored!.leaseId)).toBeGreaterThan(590);
  });

  it("re-acquires its own lease with the same two subnets and key, on a fresh etcd lease", async () => {
    const store = fixture().newStore();
    const first = await acquire(store, 2);
    const again = await acquire(store, 2, { previousEtcdLeaseId: first.lease.etcdLeaseId });
    expect(again.how).toBe("reused-by-public-ip");
    expect(again.lease.key).toBe(first.lease.key);
    expect(again.lease.ipv6Subnet?.equals(first.lease.ipv6Subnet!)).toBe(true);
    expect(again.lease.etcdLeaseId).not.toBe(first.lease.etcdLeaseId);
    // The previous IPv6 subnet alone is proof enough too (subnet.env's FLANNEL_IPV6_SUBNET).
    const byV6 = await acquire(store, 2, { previousIpv6Subnet: first.lease.ipv6Subnet });
    expect(byV6.lease.key).toBe(first.lease.key);
    expect((await store.list(store.subnetsPrefix)).keys).toHaveLength(1);
  });

  it("prefers both previous subnets from the subnet file; a taken IPv6 one is replaced, the IPv4 one kept", async () => {
    const store = fixture().newStore();
    const previousSubnet = Ipv4Subnet.parse("10.66.200.0/24");
    const previousIpv6Subnet = Ipv6Subnet.parse("fd66:0:0:c8::/64");
    const first = await acquire(store, 3, { previousSubnet, previousIpv6Subnet });
    expect(first.how).toBe("previous-subnet");
    expect(first.lease.key).toBe(`${store.subnetsPrefix}10.66.200.0-24&fd66:0:0:c8::-64`);

    // Another host had the same subnet file (both previous subnets are taken): random ones.
    const other = await acquire(store, 4, { previousSubnet, previousIpv6Subnet });
    expect(other.how).toBe("allocated");
    expect(other.lease.subnet!.equals(previousSubnet)).toBe(false);
    expect(other.lease.ipv6Subnet?.equals(previousIpv6Subnet)).toBe(false);

    // Only the IPv6 one taken: the IPv4 subnet is kept, the IPv6 one picked anew.
    const third = await acquire(store, 5, { previousSubnet: Ipv4Subnet.parse("10.66.201.0/24"), previousIpv6Subnet });
    expect(third.how).toBe("previous-subnet");
    expect(third.lease.subnet!.toString()).toBe("10.66.201.0/24");
    expect(third.lease.ipv6Subnet?.equals(previousIpv6Subnet)).toBe(false);
    const v6s = [first, other, third].map((result) => result.lease.ipv6Subnet!.toString());
    expect(new Set(v6s).size).toBe(3);
  });

  it("honours a dual-stack reservation and never gives it a TTL", async () => {
    const store = fixture().newStore();
    const key = `${store.subnetsPrefix}10.66.250.0-24&fd66:0:0:fa::-64`;
    await store.put(key, '{"PublicIP":"192.168.77.6","PublicIPv6":null}');
    const { lease, how } = await acquire(store, 6);
    expect(how).toBe("reservation");
    expect(lease).toMatchObject({ key, reservation: true });
    expect(lease.ipv6Subnet?.toString()).toBe("fd66:0:0:fa::/64");
    const stored = await store.get(key);
    expect(stored?.leaseId).toBe("0");
    expect(stored?.value).toBe(flannelValue(6));
  });

  it("replaces its IPv4-only lease when IPv6 is turned on (as flanneld), keeping the IPv4 subnet", async () => {
    const store = fixture().newStore();
    const before = await acquireLease({ store, config: ipv4Only, attrs: { ...attrs(7), publicIPv6: null, backendV6Data: undefined }, ttlSeconds: 600, logger });
    expect(before.lease.ipv6Subnet).toBeUndefined();
    const after = await acquire(store, 7, { previousEtcdLeaseId: before.lease.etcdLeaseId });
    expect(after.lease.subnet!.equals(before.lease.subnet!)).toBe(true);
    expect(after.lease.ipv6Subnet).toBeDefined();
    const keys = (await store.list(store.subnetsPrefix)).keys.map((stored) => stored.key);
    expect(keys).toEqual([after.lease.key]);
    expect(await store.timeToLive(before.lease.etcdLeaseId!)).toBeUndefined();

    // And back: an IPv4-only network replaces the dual-stack lease by an IPv4-only one.
    const back = await acquireLease({ store, config: ipv4Only, attrs: { ...attrs(7), publicIPv6: null }, ttlSeconds: 600, logger, previousEtcdLeaseId: after.lease.etcdLeaseId });
    expect(back.lease.ipv6Subnet).toBeUndefined();
    expect(back.lease.subnet!.equals(before.lease.subnet!)).toBe(true);
    expect((await store.list(store.subnetsPrefix)).keys.map((stored) => stored.key)).toEqual([before.lease.key]);
  });

  it("leaves an IPv4-only reservation alone in a dual-stack network (the operator's), and leases beside it", async () => {
    const store = fixture().newStore();
    const reserved = `${store.subnetsPrefix}10.66.240.0-24`;
    await store.put(reserved, '{"PublicIP":"192.168.77.8","PublicIPv6":null}');
    const { lease } = await acquire(store, 8);
    expect(lease.key).not.toBe(reserved);
    expect(lease.subnet!.toString()).not.toBe("10.66.240.0/24");
    expect((await store.get(reserved))?.value).toBe('{"PublicIP":"192.168.77.8","PublicIPv6":null}');
  });

  it("sits next to IPv4-only hosts: their subnets stay theirs, they occupy no IPv6 subnet", async () => {
    const store = fixture().newStore();
    const small = parseNetworkConfig(
      '{"Network":"10.69.0.0/16","SubnetMin":"10.69.1.0","SubnetMax":"10.69.2.0","EnableIPv6":true,"IPv6Network":"fd69::/48",' +
        '"IPv6SubnetMin":"fd69:0:0:1::","IPv6SubnetMax":"fd69:0:0:1::","Backend":{"Type":"vxlan"}}',
    );
    await store.put(`${store.subnetsPrefix}10.69.1.0-24`, '{"PublicIP":"192.168.77.90","PublicIPv6":null,"BackendType":"vxlan"}');
    const { lease } = await acquireLease({ store, config: small, attrs: attrs(9), ttlSeconds: 60, logger });
    expect(lease.key).toBe(`${store.subnetsPrefix}10.69.2.0-24&fd69:0:0:1::-64`);
  });

  it("never hands out an IPv6 subnet a key names, even a malformed key or value; out of subnets names the IPv6 range", async () => {
    const store = fixture().newStore();
    const tiny = parseNetworkConfig(
      '{"Network":"10.70.0.0/16","EnableIPv6":true,"IPv6Network":"fd70::/48","IPv6SubnetMin":"fd70:0:0:1::","IPv6SubnetMax":"fd70:0:0:3::","Backend":{"Type":"vxlan"}}',
    );
    // A garbage value, a PublicIPv6 that is no address, and a key whose IPv6 part has host bits set.
    await store.put(`${store.subnetsPrefix}10.70.1.0-24&fd70:0:0:1::-64`, "{garbage");
    await store.put(`${store.subnetsPrefix}10.70.2.0-24&fd70:0:0:2::1-64`, '{"PublicIP":"192.168.77.91","PublicIPv6":"fd00:77::5b"}');
    const before = await store.list(store.subnetsPrefix);
    const { lease } = await acquireLease({ store, config: tiny, attrs: attrs(10), ttlSeconds: 60, logger });
    expect(lease.ipv6Subnet?.toString()).toBe("fd70:0:0:3::/64");
    expect(lease.subnet!.toString()).not.toMatch(/^10\.70\.[12]\.0/);
    const refused = await acquireLease({ store, config: tiny, attrs: attrs(11), ttlSeconds: 60, logger }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OutOfSubnetsError);
    expect((refused as OutOfSubnetsError).family).toBe("ipv6");
    expect((refused as Error).message).toMatch(
      /out of IPv6 subnets: all \/64 subnets of IPv6Network fd70::\/48 between IPv6SubnetMin fd70:0:0:1:: and IPv6SubnetMax fd70:0:0:3:: are leased/,
    );
    // Nothing lost: the malformed keys are still there, untouched.
    const after = await store.list(store.subnetsPrefix);
    for (const stored of before.keys) expect(after.keys.find((key) => key.key === stored.key)?.value).toBe(stored.value);
  });

  it("names the key and the field of a malformed IPv6 part", async () => {
    const store = fixture().newStore();
    const badValue = `${store.subnetsPrefix}10.66.3.0-24&fd66:0:0:3::-64`;
    await store.put(badValue, '{"PublicIP":"192.168.77.92","PublicIPv6":"fd66::zz"}');
    const badKey = `${store.subnetsPrefix}10.66.4.0-24&fd66:0:0:4::1-64`;
    await store.put(badKey, '{"PublicIP":"192.168.77.93","PublicIPv6":null}');
    const notIpv6 = `${store.subnetsPrefix}10.66.5.0-24&fd66:0:0:5:::-64`;
    await store.put(notIpv6, '{"PublicIP":"192.168.77.94","PublicIPv6":null}');
    const [value, key, part] = await Promise.all([store.get(badValue), store.get(badKey), store.get(notIpv6)]);
    expect(() => decodeLease(value!)).toThrow(`${badValue}: PublicIPv6 "fd66::zz" is not an IPv6 address`);
    expect(() => decodeLease(key!)).toThrow(`${badKey}: not a subnet key: its IPv6 part "fd66:0:0:4::1-64" has host bits set (fd66:0:0:4::/64 would be fd66:0:0:4::-64)`);
    expect(() => decodeLease(part!)).toThrow(`${notIpv6}: not a subnet key: its IPv6 part "fd66:0:0:5:::-64" is not ipv6-len`);
  });

  it("20 dual-stack hosts racing for 16 IPv6 subnets get 16 distinct keys and 4 IPv6 out-of-subnets errors", async () => {
    const store = fixture().newStore();
    const racing = parseNetworkConfig(
      '{"Network":"10.71.0.0/16","EnableIPv6":true,"IPv6Network":"fd71::/48","IPv6SubnetMin":"fd71:0:0:10::","IPv6SubnetMax":"fd71:0:0:1f::","Backend":{"Type":"vxlan"}}',
    );
    const stores = Array.from({ length: 20 }, () => fixture().newStore(store.prefix));
    const results = await Promise.allSettled(stores.map((s, i) => acquireLease({ store: s, config: racing, attrs: attrs(100 + i), ttlSeconds: 60, logger })));
    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.lease] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    expect(new Set(won.map((lease) => lease.ipv6Subnet!.toString())).size).toBe(16);
    expect(new Set(won.map((lease) => lease.subnet!.toString())).size).toBe(16);
    expect(lost).toHaveLength(4);
    for (const error of lost) expect(error).toMatchObject({ name: "OutOfSubnetsError", family: "ipv6" });
    expect((await store.list(store.subnetsPrefix)).keys).toHaveLength(16);
  });
});

function formatIpv4Key(subnet: Ipv4Subnet): string {
  return subnet.toString().replace("/", "-");
}
