import type { NetworkConfig } from "../config/network-config.js";
import { Ipv4Subnet } from "../net/ipv4.js";

/** True when a lease's subnet is one this config could have handed out. */
export function fitsConfig(subnet: Ipv4Subnet, config: NetworkConfig): boolean {
  return (
    subnet.prefixLength === config.subnetLen &&
    subnet.network >= config.subnetMin &&
    subnet.network <= config.subnetMax &&
    config.network.contains(subnet)
  );
}

/**
 * Which subnets of the config's range are free, given the subnets already in etcd: candidates
 * from SubnetMin upward, at most `limit` of them (flanneld stops at 100 and
 * picks one at random, which spreads concurrent starters without scanning huge networks).
 */
export function freeSubnets(config: NetworkConfig, occupied: readonly Ipv4Subnet[], limit = Infinity): Ipv4Subnet[] {
  const step = 2 ** (32 - config.subnetLen);
  // Same-length leases are looked up in a set; odd-sized keys (another config's leftovers) by overlap.
  const taken = new Set<number>();
  const odd: Ipv4Subnet[] = [];
  for (const subnet of occupied) {
    if (subnet.prefixLength === config.subnetLen) taken.add(subnet.network);
    else odd.push(subnet);
  }
  const free: Ipv4Subnet[] = [];
  for (let start = config.subnetMin; start <= config.subnetMax && free.length < limit; start += step) {
    if (taken.has(start)) continue;
    const candidate = new Ipv4Subnet(start, config.subnetLen);
    if (odd.some((subnet) => subnet.overlaps(candidate))) continue;
    free.push(candidate);
  }
  return free;
}
