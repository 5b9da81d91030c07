import type { Ipv4NetworkConfig, Ipv6NetworkConfig, NetworkConfig } from "../config/network-config.js";
import { Ipv4Subnet } from "../net/ipv4.js";
import { Ipv6Subnet } from "../net/ipv6.js";
import type { ClaimedSubnets, SubnetKeyParts } from "./subnet-key.js";

/**
 * True when a lease's IPv4 subnet is one this config could have handed out; in an IPv6-only
 * network a lease must carry none (flanneld's isSubnetConfigCompat: only its empty 0.0.0.0/0 fits).
 */
export function fitsConfig(subnet: Ipv4Subnet | undefined, config: NetworkConfig): boolean {
  const ipv4 = config.ipv4;
  if (!ipv4) return subnet === undefined;
  return (
    subnet !== undefined &&
    subnet.prefixLength === ipv4.subnetLen &&
    subnet.network >= ipv4.subnetMin &&
    subnet.network <= ipv4.subnetMax &&
    ipv4.network.contains(subnet)
  );
}

/**
 * Which subnets of the config's range are free, given the subnets already in etcd: candidates
 * from SubnetMin upward, at most `limit` of them (flanneld stops at 100 and
 * picks one at random, which spreads concurrent starters without scanning huge networks).
 */
export function freeSubnets(ipv4: Ipv4NetworkConfig, occupied: readonly Ipv4Subnet[], limit = Infinity): Ipv4Subnet[] {
  const step = 2 ** (32 - ipv4.subnetLen);
  const range = { first: ipv4.subnetMin, last: ipv4.subnetMax, prefixLength: ipv4.subnetLen };
  return walkFree(range, (start) => start + step, (start) => new Ipv4Subnet(start, ipv4.subnetLen), occupied, limit);
}

/** A subnet of either family, as the walk needs it. */
interface WalkedSubnet<N> {
  readonly network: N;
  readonly prefixLength: number;
  overlaps(other: this): boolean;
}

/**
 * Free candidates of `range` (start addresses first..last, every `next`), skipping occupied ones:
 * same-length leases are looked up in a set, odd-sized keys (another config's leftovers) by overlap.
 */
function walkFree<N extends number | bigint, S extends WalkedSubnet<N>>(
  range: { first: N; last: N; prefixLength: number },
  next: (start: N) => N,
  subnetAt: (start: N) => S,
  occupied: readonly S[],
  limit: number,
): S[] {
  const taken = new Set<N>();
  const odd: S[] = [];
  for (const subnet of occupied) {
    if (subnet.prefixLength === range.prefixLength) taken.add(subnet.network);
    else odd.push(subnet);
  }
  const free: S[] = [];
  for (let start = range.first; start <= range.last && free.length < limit; start = next(start)) {
    if (taken.has(start)) continue;
    const candidate = subnetAt(start);
    if (odd.some((subnet) => subnet.overlaps(candidate))) continue;
    free.push(candidate);
  }
  return free;
}

/**
 * The IPv6 half of flanneld's compatibility check (isIPv6SubnetConfigCompat): in a dual-stack
 * network a lease must carry an IPv6 subnet of the configured length inside
 * [IPv6SubnetMin, IPv6SubnetMax] (so must an IPv6-only one's); in an IPv4-only network it must carry none.
 */
export function fitsIpv6Config(ipv6Subnet: Ipv6Subnet | undefined, config: NetworkConfig): boolean {
  const ipv6 = config.ipv6;
  if (!ipv6) return ipv6Subnet === undefined;
  return (
    ipv6Subnet !== undefined &&
    ipv6Subnet.prefixLength === ipv6.subnetLen &&
    ipv6Subnet.network >= ipv6.subnetMin &&
    ipv6Subnet.network <= ipv6.subnetMax &&
    ipv6.network.contains(ipv6Subnet)
  );
}

/** Both families fit: a lease flanneld would keep under this config rather than delete. */
export function leaseFitsConfig(parts: SubnetKeyParts, config: NetworkConfig): boolean {
  return fitsConfig(parts.subnet, config) && fitsIpv6Config(parts.ipv6Subnet, config);
}

/**
 * Free IPv6 subnets from IPv6SubnetMin upward, at most `limit` (flanneld's 100 as for IPv4):
 * an IPv6 range of /64s in a /48 holds 65 535 of them, so it is never walked to the end.
 */
export function freeIpv6Subnets(ipv6: Ipv6NetworkConfig, occupied: readonly Ipv6Subnet[], limit: number): Ipv6Subnet[] {
  const step = 1n << BigInt(128 - ipv6.subnetLen);
  const range = { first: ipv6.subnetMin, last: ipv6.subnetMax, prefixLength: ipv6.subnetLen };
  return walkFree(range, (start) => start + step, (start) => new Ipv6Subnet(start, ipv6.subnetLen), occupied, limit);
}

/**
 * How many IPv6 subnets are left, counted rather than walked (the range may hold 2^32 and more):
 * the candidates in range minus those a key covers. Two overlapping odd-sized keys are counted
 * twice, so this can be low by their overlap, never high.
 */
export function countFreeIpv6Subnets(ipv6: Ipv6NetworkConfig, occupied: readonly Ipv6Subnet[]): bigint {
  const shift = BigInt(128 - ipv6.subnetLen);
  const total = ((ipv6.subnetMax - ipv6.subnetMin) >> shift) + 1n;
  const counted = new Set<bigint>();
  let covered = 0n;
  for (const subnet of occupied) {
    // The candidates the key overlaps: the range of /subnetLen starts from its first to its last address.
    const first = subnet.network < ipv6.subnetMin ? ipv6.subnetMin : (subnet.network >> shift) << shift;
    const last = subnet.last > ipv6.subnetMax + (1n << shift) - 1n ? ipv6.subnetMax : (subnet.last >> shift) << shift;
    if (first > last) continue;
    if (first === last) {
      if (counted.has(first)) continue;
      counted.add(first);
    }
    covered += ((last - first) >> shift) + 1n;
  }
  return total > covered ? total - covered : 0n;
}

/** Subnets left for the metrics: in a dual-stack network the scarcer family decides. */
export function freeSubnetCount(config: NetworkConfig, occupied: readonly Ipv4Subnet[], occupiedV6: readonly Ipv6Subnet[]): number {
  const ipv4 = config.ipv4 && freeSubnets(config.ipv4, occupied).length;
  const ipv6 = config.ipv6 && countFreeIpv6Subnets(config.ipv6, occupiedV6);
  if (ipv6 === undefined) return ipv4 ?? 0;
  // An IPv6-only /48 of /64s counts 65 535; a wider range is capped where a number stays exact.
  const ipv6Count = ipv6 > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(ipv6);
  return ipv4 === undefined ? ipv6Count : Math.min(ipv4, ipv6Count);
}

/**
 * What of a key's subnets lies outside the config's Network (IPv6Network), for each family both
 * have; undefined when nothing does. SubnetLen/SubnetMin/SubnetMax are not checked: flannel lets
 * them change under running leases, the Network never (a route outside it goes somewhere else).
 */
export function outsideNetwork(parts: ClaimedSubnets, config: NetworkConfig): string | undefined {
  const outside: string[] = [];
  if (parts.subnet && config.ipv4 && !config.ipv4.network.contains(parts.subnet)) outside.push(`${parts.subnet} is outside Network ${config.ipv4.network}`);
  if (parts.ipv6Subnet && config.ipv6 && !config.ipv6.network.contains(parts.ipv6Subnet)) outside.push(`${parts.ipv6Subnet} is outside IPv6Network ${config.ipv6.network}`);
  return outside.length > 0 ? outside.join(", ") : undefined;
}
