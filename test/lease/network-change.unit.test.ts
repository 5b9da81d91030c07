import { describe, expect, it } from "vitest";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { acquireLease } from "../../src/lease/acquire.js";
import { NetworkChangedError } from "../../src/lease/errors.js";
import { InMemoryLeaseStore } from "../../src/lease/in-memory-lease-store.js";
import { formatLeaseValue } from "../../src/lease/lease-value.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { silentLogger } from "../../src/observe/logger.js";

/** A host restarted after the Network was changed from 10.66.0.0/16 to 10.77.0.0/16 while it was down. */
const NEW = parseNetworkConfig('{"Network":"10.77.0.0/16","Backend":{"Type":"alloc"}}');
const attrs = (ip: string) => ({ publicIP: ip, publicIPv6: null, backendType: "alloc" });
const restart = (store: InMemoryLeaseStore, previous?: string) =>
  acquireLease({ store, config: NEW, attrs: attrs("192.168.77.2"), previousSubnet: previous ? Ipv4Subnet.parse(previous) : undefined, ttlSeconds: 600, logger: silentLogger() });
const old = async (store: InMemoryLeaseStore, third: number, ip: string) => store.put(`${store.subnetsPrefix}10.66.${third}.0-24`, formatLeaseValue(attrs(ip)), await store.grantLease(600));

describe("a daemon restarted under a new Network", () => {
  it("is refused while other hosts' leases of the old Network live, naming them; our old lease stays untouched", async () => {
    const store = new InMemoryLeaseStore();
    await old(store, 1, "192.168.77.1");
    await old(store, 2, "192.168.77.2");
    const error = await restart(store, "10.66.2.0/24").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkChangedError);
    expect((error as Error).message).toMatch(/our subnet 10\.66\.2\.0\/24 \(10\.66\.2\.0\/24 is outside Network 10\.77\.0\.0\/16\), and 1 lease\(s\) of other hosts outside it still live \(\/coreos\.com\/network\/subnets\/10\.66\.1\.0-24\)/);
    const keys = (await store.list(store.subnetsPrefix)).keys.map((stored) => stored.key.slice(store.subnetsPrefix.length)).sort();
    expect(keys).toEqual(["10.66.1.0-24", "10.66.2.0-24"]);
  });

  it("is refused too when only the subnet file tells our old subnet (our lease expired meanwhile)", async () => {
    const store = new InMemoryLeaseStore();
    await old(store, 1, "192.168.77.1");
    await expect(restart(store, "10.66.2.0/24")).rejects.toBeInstanceOf(NetworkChangedError);
    expect((await store.list(store.subnetsPrefix)).keys).toHaveLength(1);
  });

  it("moves into the new Network once no other host holds a lease of the old one (every host was stopped, the leases went)", async () => {
    const store = new InMemoryLeaseStore();
    await old(store, 2, "192.168.77.2");
    const result = await restart(store, "10.66.2.0/24");
    expect(NEW.ipv4!.network.contains(result.lease.subnet!)).toBe(true);
    expect((await store.list(store.subnetsPrefix)).keys.map((stored) => stored.key)).toEqual([result.lease.key]);
  });
});
