import type { Logger } from "pino";
import { sleep } from "../async/sleep.js";
import { primaryNetwork, type NetworkConfig } from "../config/network-config.js";
import type { Ipv4Subnet } from "../net/ipv4.js";
import type { Ipv6Subnet } from "../net/ipv6.js";
import type { LeaseStore } from "./lease-store.js";
import { NetworkChangedError, OutOfSubnetsError, PublicIPInUseError } from "./errors.js";
import { formatLeaseValue, sameAttrs } from "./lease-value.js";
import { decodeLeases } from "./stored-lease.js";
import { fitsConfig, fitsIpv6Config, freeIpv6Subnets, freeSubnetCount, freeSubnets, leaseFitsConfig, outsideNetwork } from "./subnet-space.js";
import { leaseSubnets, subnetKey, subnetsClaimedByKey, type ClaimedSubnets, type SubnetKeyParts } from "./subnet-key.js";
import type { StoredKey } from "../store/records.js";
import { carriesAddress, hostAddress, hostAddressFlag } from "./host-address.js";
import type { Lease, LeaseAttrs } from "./types.js";

export interface AcquireRequest {
  store: LeaseStore;
  config: NetworkConfig;
  attrs: LeaseAttrs;
  /** The subnet this host had before (subnet.env, or the lease just lost); preferred when free. */
  previousSubnet?: Ipv4Subnet;
  /** The IPv6 subnet it had before (FLANNEL_IPV6_SUBNET, or the lease just lost); preferred when free in a dual-stack network. */
  previousIpv6Subnet?: Ipv6Subnet;
  /**
   * The etcd lease this host last held (weft's state dir, which outlives a reboot): a lease with
   * our PublicIP on it is ours to reuse. See `isOurs` for the other proofs.
   */
  previousEtcdLeaseId?: string;
  ttlSeconds: number;
  logger: Logger;
  /** Lost races before giving up; each lost race re-lists and re-picks. */
  maxAttempts?: number;
  random?: () => number;
  /** Ends the retries of lost races: its reason is thrown before the next attempt. */
  signal?: AbortSignal;
}

export interface AcquireResult {
  lease: Lease;
  /** Free subnets left in the range after this acquisition (for the metrics). */
  freeSubnets: number;
  /** How the subnet was chosen, for the log. */
  how: "reused-by-public-ip" | "reservation" | "previous-subnet" | "reclaimed-malformed" | "allocated";
}

const CANDIDATES_TO_PICK_FROM = 100;
const DEFAULT_MAX_ATTEMPTS = 50;

/**
 * Leases a subnet as flanneld does (flannel-compat §1.7): reuse the lease holding our PublicIP, else the
 * previous subnet if free, else a random free one; created with a create-if-absent transaction.
 * With EnableIPv6 both families are leased together in one dual-stack key (10.66.52.0-24&fd66:0:0:6::-64);
 * an IPv6-only network (EnableIPv4: false) leases `0.0.0.0-0&fd66:0:0:6::-64` and knows its own
 * lease by PublicIPv6, since every IPv6-only lease says PublicIP 0.0.0.0 (host-address.ts).
 * Unlike flanneld, a lost race re-lists and retries, and a reservation keeps having no TTL.
 */
export async function acquireLease(request: AcquireRequest): Promise<AcquireResult> {
  const maxAttempts = request.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const preferred: Preferred = { subnet: request.previousSubnet, ipv6Subnet: request.previousIpv6Subnet };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    request.signal?.throwIfAborted();
    const result = await tryAcquire(request, preferred);
    if (result) return result;
    request.logger.info({ attempt }, "another host took the subnet first; listing again");
    // A little jitter so hosts that collided do not collide again in lockstep.
    await sleep(5 + Math.floor((request.random ?? Math.random)() * 50), request.signal);
  }
  const network = `${request.config.ipv4 ? "Network" : "IPv6Network"} ${primaryNetwork(request.config)}`;
  throw new Error(
    `could not lease a subnet of ${network} after ${maxAttempts} lost races; ` +
      "too many hosts are starting at once — weft will try again",
  );
}

/** The subnets to prefer, per family; a round may add the IPv4 subnet of our own lease it had to delete. */
interface Preferred {
  subnet?: Ipv4Subnet;
  ipv6Subnet?: Ipv6Subnet;
}

/** One round: undefined when we lost a race and must list again. */
async function tryAcquire(request: AcquireRequest, preferred: Preferred): Promise<AcquireResult | undefined> {
  const { store, config, attrs, logger } = request;
  const listing = await store.list(store.subnetsPrefix);
  const leases = decodeLeases(listing.keys, logger);
  // Every key occupies the subnets it names, even when its value or its other family's part is malformed.
  const claimed = listing.keys.map((stored) => subnetsClaimedByKey(stored.key));
  const occupied = claimed.flatMap((subnets) => subnets.subnet ?? []);
  const occupiedV6 = claimed.flatMap((subnets) => subnets.ipv6Subnet ?? []);
  const freeCount = () => freeSubnetCount(config, occupied, occupiedV6);

  const ourAddress = hostAddress(attrs);
  const ours = ourAddress === undefined ? [] : leases.filter((lease) => carriesAddress(lease.attrs, ourAddress));
  refuseNetworkMove(request, listing.keys, ours);
  for (const lease of ours) {
    if (leaseFitsConfig(lease, config)) {
      if (!isOurs(request, lease)) throw new PublicIPInUseError(lease.key, ourAddress ?? attrs.publicIP, lease.etcdLeaseId, hostAddressFlag(attrs));
      const renewed = await retakeOwnLease(request, lease);
      if (!renewed) return undefined;
      return { lease: renewed, freeSubnets: freeCount(), how: lease.reservation ? "reservation" : "reused-by-public-ip" };
    }
    const misfit = describeMisfit(lease, config);
    if (lease.reservation) {
      logger.warn({ key: lease.key }, `reservation for our address ${ourAddress ?? attrs.publicIP} does not fit the network config (${misfit}); leaving it alone`);
      continue;
    }
    // As flanneld (isSubnetConfigCompat && isIPv6SubnetConfigCompat): a lease of our PublicIP that
    // does not fit is deleted, so with EnableIPv6 turned on a host's IPv4-only lease is replaced by a
    // dual-stack one (and an IPv4-only network replaces a dual-stack lease by an IPv4-only one).
    // Unlike flanneld, which then also moves the host to a random IPv4 subnet (its previous-subnet
    // check wants both families), the deleted lease's IPv4 subnet stays preferred when it is
    // provably ours: docker0 and the containers keep their IPv4 addresses.
    logger.warn({ key: lease.key }, `lease for our PublicIP is not compatible with the current network config (${misfit}); deleting it`);
    if (!preferred.subnet && lease.subnet && fitsConfig(lease.subnet, config) && isOurs(request, lease)) preferred.subnet = lease.subnet;
    // Likewise its IPv6 subnet when the network became IPv6-only.
    if (!config.ipv4 && !preferred.ipv6Subnet && lease.ipv6Subnet && fitsIpv6Config(lease.ipv6Subnet, config) && isOurs(request, lease)) {
      preferred.ipv6Subnet = lease.ipv6Subnet;
    }
    await store.deleteIfUnchanged(lease.key, lease.modRevision ?? "0");
    await revokeQuietly(store, lease.etcdLeaseId);
    return undefined;
  }

  const previous = config.ipv4 ? preferred.subnet : undefined;
  const previousV6 = config.ipv6 ? preferred.ipv6Subnet : undefined;
  const previousFits = previous !== undefined && fitsConfig(previous, config);
  const previousV6Fits = previousV6 !== undefined && fitsIpv6Config(previousV6, config);
  // Both of the network's families known from before: the key our previous lease had.
  const previousParts = (!config.ipv4 || previousFits) && (!config.ipv6 || previousV6Fits) ? leaseSubnets(previous, previousV6) : undefined;
  if (previousParts) {
    const previousKey = listing.keys.find((stored) => stored.key === subnetKey(store.subnetsPrefix, previousParts));
    if (previousKey && !leases.some((lease) => lease.key === previousKey.key)) {
      // Our subnet's key holds garbage: no host can be using it through that value, and docker0
      // still has the subnet. Take it back rather than move to a new one.
      const reclaimed = await reclaimMalformed(request, previousParts, previousKey.modRevision);
      if (!reclaimed) return undefined;
      logger.warn(
        { key: previousKey.key, subnet: previous?.toString(), ipv6Subnet: previous ? undefined : previousV6?.toString() },
        `the key of our previous subnet ${previousKey.key} held a malformed value; rewrote it with ours`,
      );
      return { lease: reclaimed, freeSubnets: freeCount(), how: "reclaimed-malformed" };
    }
  }
  if (previous && !previousFits) logger.warn({ subnet: previous.toString() }, "the previous subnet does not fit the network config; ignoring it");
  if (previousV6 && !previousV6Fits) logger.warn({ ipv6Subnet: previousV6.toString() }, "the previous IPv6 subnet does not fit the network config; ignoring it");

  // Each family's previous subnet is taken when it is free, the other one picked at random.
  const random = request.random ?? Math.random;
  const reuse = previousFits && !occupied.some((subnet) => subnet.overlaps(previous)) ? previous : undefined;
  const reuseV6 = previousV6Fits && !occupiedV6.some((subnet) => subnet.overlaps(previousV6)) ? previousV6 : undefined;
  const subnet = config.ipv4
    ? (reuse ?? pick(freeSubnets(config.ipv4, occupied, CANDIDATES_TO_PICK_FROM), random) ?? throwOutOfSubnets(config, occupied.length, "ipv4"))
    : undefined;
  const ipv6Subnet = config.ipv6
    ? (reuseV6 ?? pick(freeIpv6Subnets(config.ipv6, occupiedV6, CANDIDATES_TO_PICK_FROM), random) ?? throwOutOfSubnets(config, occupiedV6.length, "ipv6"))
    : undefined;
  // The config parser guarantees one family at least.
  const parts = leaseSubnets(subnet, ipv6Subnet) ?? throwOutOfSubnets(config, 0, "ipv4");
  const created = await createLease(request, parts);
  if (!created) return undefined;
  if (config.ipv6 && (await lostToClash(request, created))) return undefined;
  if (reuse) logger.info({ subnet: reuse.toString() }, "reusing the previously leased subnet");
  if (reuseV6) logger.info({ ipv6Subnet: reuseV6.toString() }, "reusing the previously leased IPv6 subnet");
  // In an IPv6-only network the IPv6 subnet is the one a host moves with.
  const reused = config.ipv4 ? reuse : reuseV6;
  return { lease: created, freeSubnets: freeCount() - 1, how: reused ? "previous-subnet" : "allocated" };
}

/**
 * The Network changed while this host was down: our subnet (our lease's, or the subnet file's)
 * lies outside the config's Network. Moving is right once no other host runs in the old Network
 * (every host was stopped and the old leases went, the way flannel documents a Network change);
 * while any other host's lease outside the new Network lives, moving would cut us off from them
 * and leave docker0 on the old subnet: refused with NetworkChangedError (the daemon retries).
 */
function refuseNetworkMove(request: AcquireRequest, keys: readonly StoredKey[], ours: readonly Lease[]): void {
  const previous = { subnet: request.previousSubnet, ipv6Subnet: request.previousIpv6Subnet };
  const refusal = networkMoveRefusal(request.config, keys, [...ours, previous], new Set(ours.map((lease) => lease.key)));
  if (refusal instanceof NetworkChangedError) throw refusal;
  if (refusal) {
    request.logger.error(
      { subnet: refusal.ownSubnet },
      `the network config changed while this host was down (${refusal.problem}) and no other host holds a lease outside it: moving into the new Network; ` +
        "docker0 must be reconfigured from the subnet file (restart docker), containers on the old subnet are cut off until then",
    );
  }
}

/**
 * Whether a host whose subnets were `ownSubnets` (its lease, its subnet file) may lease under
 * `config`: undefined when they lie inside its Network; a NetworkChangedError when they do not
 * and another host's lease outside it lives (`keys`: the subnets prefix; `ownKeys` and keys naming
 * our own subnets are not other hosts'); else what moves (no host is left in the old Network).
 */
export function networkMoveRefusal(
  config: NetworkConfig,
  keys: readonly StoredKey[],
  ownSubnets: readonly ClaimedSubnets[],
  ownKeys: ReadonlySet<string> = new Set(),
): NetworkChangedError | { ownSubnet: string; problem: string } | undefined {
  for (const parts of ownSubnets) {
    const problem = outsideNetwork(parts, config);
    if (!problem) continue;
    const ownSubnet = [parts.subnet, parts.ipv6Subnet].filter((subnet) => subnet !== undefined).join(" and ");
    const isOwn = (key: string) => {
      const claimed = subnetsClaimedByKey(key);
      return ownKeys.has(key) || ownSubnets.some((own) => (own.subnet !== undefined && claimed.subnet?.equals(own.subnet)) || (own.ipv6Subnet !== undefined && claimed.ipv6Subnet?.equals(own.ipv6Subnet)));
    };
    const oldLeases = keys.filter((stored) => !isOwn(stored.key) && outsideNetwork(subnetsClaimedByKey(stored.key), config) !== undefined).map((stored) => stored.key);
    return oldLeases.length > 0 ? new NetworkChangedError(ownSubnet, problem, oldLeases) : { ownSubnet, problem };
  }
  return undefined;
}

/**
 * Create-if-absent guards one key, but two dual-stack hosts that picked one IPv6 subnet with
 * different IPv4 subnets (or the reverse) write two different keys, and both transactions
 * succeed (flanneld has this gap). So a dual-stack create is checked against a fresh listing:
 * the key written first (lower revision) keeps the subnet, the later one is deleted and its
 * writer picks again. Both writers compare the same two revisions, so exactly one retreats.
 */
async function lostToClash(request: AcquireRequest, created: Lease): Promise<boolean> {
  const { store, logger } = request;
  const listing = await store.list(store.subnetsPrefix);
  const ours = listing.keys.find((stored) => stored.key === created.key);
  if (!ours) return true;
  const clash = listing.keys.find((stored) => {
    if (stored.key === created.key || BigInt(stored.modRevision) >= BigInt(ours.modRevision)) return false;
    const claimed = subnetsClaimedByKey(stored.key);
    const v4 = created.subnet !== undefined && (claimed.subnet?.overlaps(created.subnet) ?? false);
    return v4 || (created.ipv6Subnet !== undefined && (claimed.ipv6Subnet?.overlaps(created.ipv6Subnet) ?? false));
  });
  if (!clash) return false;
  logger.info({ key: created.key, clash: clash.key }, `${clash.key} was written just before our ${created.key} and names one of its subnets; picking again`);
  await store.deleteIfUnchanged(created.key, ours.modRevision);
  await revokeQuietly(store, created.etcdLeaseId);
  return true;
}

function pick<T>(candidates: readonly T[], random: () => number): T | undefined {
  return candidates[Math.floor(random() * candidates.length)];
}

function throwOutOfSubnets(config: NetworkConfig, leased: number, family: "ipv4" | "ipv6"): never {
  throw new OutOfSubnetsError(config, leased, family);
}

/** Which family of a lease does not fit, for the log. */
function describeMisfit(lease: Lease, config: NetworkConfig): string {
  if (!fitsConfig(lease.subnet, config)) {
    if (!config.ipv4) return `it has the IPv4 subnet ${lease.subnet?.toString() ?? "-"}, and the network is IPv6-only (EnableIPv4: false)`;
    if (!lease.subnet) return "it has no IPv4 subnet (an IPv6-only lease), and the network leases IPv4 (EnableIPv4)";
    return `${lease.subnet} is not a /${config.ipv4.subnetLen} of Network ${config.ipv4.network} in SubnetMin..SubnetMax`;
  }
  if (!config.ipv6) return "it has an IPv6 subnet, and the network is IPv4-only";
  if (!lease.ipv6Subnet) return "it has no IPv6 subnet, and the network is dual-stack (EnableIPv6)";
  return `${lease.ipv6Subnet} is not a /${config.ipv6.subnetLen} of IPv6Network ${config.ipv6.network} in IPv6SubnetMin..IPv6SubnetMax`;
}

/**
 * A lease carrying our PublicIP is ours to reuse only with a proof that this host held it: a
 * reservation (the operator's), our previous subnet of either family (subnet.env, or the lease just lost), the
 * etcd lease our state dir recorded, or the same non-empty backend data (a VtepMAC kept in the
 * state dir). Without one it may belong to another live host started with the same
 * --public-ip: taking it over would revoke that host's etcd lease and share its subnet.
 */
function isOurs(request: AcquireRequest, lease: Lease): boolean {
  if (lease.reservation) return true;
  if (lease.subnet && request.previousSubnet?.equals(lease.subnet)) return true;
  if (lease.ipv6Subnet && request.previousIpv6Subnet?.equals(lease.ipv6Subnet)) return true;
  if (request.previousEtcdLeaseId !== undefined && request.previousEtcdLeaseId === lease.etcdLeaseId) return true;
  return request.attrs.backendData !== undefined && sameAttrs(request.attrs, lease.attrs);
}

/** Replaces a malformed value in our previous subnet's key with ours, on a fresh etcd lease. */
async function reclaimMalformed(request: AcquireRequest, parts: SubnetKeyParts, modRevision: string): Promise<Lease | undefined> {
  const { store, attrs, ttlSeconds } = request;
  const key = subnetKey(store.subnetsPrefix, parts);
  const leaseId = await store.grantLease(ttlSeconds);
  if (!(await store.replaceIfUnchanged(key, formatLeaseValue(attrs), leaseId, modRevision))) {
    await revokeQuietly(store, leaseId);
    return undefined;
  }
  return newLease(parts, attrs, key, leaseId, ttlSeconds);
}

/** Re-puts our existing lease with our current attrs; a reservation stays without TTL. */
async function retakeOwnLease(request: AcquireRequest, lease: Lease): Promise<Lease | undefined> {
  const { store, attrs, ttlSeconds } = request;
  const value = formatLeaseValue(attrs);
  if (lease.reservation) {
    if (!sameAttrs(lease.attrs, attrs)) {
      if (!(await store.replaceIfUnchanged(lease.key, value, undefined, lease.modRevision ?? "0"))) return undefined;
    }
    return { ...lease, attrs, expiresAt: undefined };
  }
  // A fresh etcd lease with the current TTL; the old one is revoked, never left to linger.
  const leaseId = await store.grantLease(ttlSeconds);
  if (!(await store.replaceIfUnchanged(lease.key, value, leaseId, lease.modRevision ?? "0"))) {
    await revokeQuietly(store, leaseId);
    return undefined;
  }
  if (lease.etcdLeaseId !== leaseId) await revokeQuietly(store, lease.etcdLeaseId);
  return { ...lease, attrs, etcdLeaseId: leaseId, reservation: false, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
}

async function createLease(request: AcquireRequest, parts: SubnetKeyParts): Promise<Lease | undefined> {
  const { store, attrs, ttlSeconds } = request;
  const key = subnetKey(store.subnetsPrefix, parts);
  const leaseId = await store.grantLease(ttlSeconds);
  if (!(await store.createIfAbsent(key, formatLeaseValue(attrs), leaseId))) {
    await revokeQuietly(store, leaseId);
    return undefined;
  }
  return newLease(parts, attrs, key, leaseId, ttlSeconds);
}

function newLease(parts: SubnetKeyParts, attrs: LeaseAttrs, key: string, etcdLeaseId: string, ttlSeconds: number): Lease {
  return { ...parts, attrs, key, etcdLeaseId, reservation: false, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
}

async function revokeQuietly(store: LeaseStore, leaseId: string | undefined): Promise<void> {
  if (!leaseId) return;
  // The lease may already be gone (expired); nothing depends on this succeeding.
  await store.revokeLease(leaseId).catch(() => undefined);
}
