import type { Logger } from "pino";
import { sleep } from "../async/sleep.js";
import type { NetworkConfig } from "../config/network-config.js";
import type { Ipv4Subnet } from "../net/ipv4.js";
import type { LeaseStore } from "./lease-store.js";
import { OutOfSubnetsError, PublicIPInUseError } from "./errors.js";
import { formatLeaseValue, sameAttrs } from "./lease-value.js";
import { decodeLeases } from "./stored-lease.js";
import { fitsConfig, freeSubnets } from "./subnet-space.js";
import { parseSubnetKey, subnetKey } from "./subnet-key.js";
import type { Lease, LeaseAttrs } from "./types.js";

export interface AcquireRequest {
  store: LeaseStore;
  config: NetworkConfig;
  attrs: LeaseAttrs;
  /** The subnet this host had before (subnet.env, or the lease just lost); preferred when free. */
  previousSubnet?: Ipv4Subnet;
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
 * Unlike flanneld, a lost race re-lists and retries, and a reservation keeps having no TTL.
 */
export async function acquireLease(request: AcquireRequest): Promise<AcquireResult> {
  const maxAttempts = request.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    request.signal?.throwIfAborted();
    const result = await tryAcquire(request);
    if (result) return result;
    request.logger.info({ attempt }, "another host took the subnet first; listing again");
    // A little jitter so hosts that collided do not collide again in lockstep.
    await sleep(5 + Math.floor((request.random ?? Math.random)() * 50), request.signal);
  }
  throw new Error(
    `could not lease a subnet of Network ${request.config.network} after ${maxAttempts} lost races; ` +
      "too many hosts are starting at once — weft will try again",
  );
}

/** One round: undefined when we lost a race and must list again. */
async function tryAcquire(request: AcquireRequest): Promise<AcquireResult | undefined> {
  const { store, config, attrs, logger } = request;
  const listing = await store.list(store.subnetsPrefix);
  const leases = decodeLeases(listing.keys, logger);
  // Every parseable key occupies its subnet, even when its value is malformed.
  const occupied = listing.keys.flatMap((stored) => parseSubnetKey(stored.key)?.subnet ?? []);
  const freeCount = () => freeSubnets(config, occupied).length;

  const ours = leases.filter((lease) => lease.attrs.publicIP === attrs.publicIP);
  for (const lease of ours) {
    if (fitsConfig(lease.subnet, config)) {
      if (!isOurs(request, lease)) throw new PublicIPInUseError(lease.key, attrs.publicIP, lease.etcdLeaseId);
      const renewed = await retakeOwnLease(request, lease);
      if (!renewed) return undefined;
      return { lease: renewed, freeSubnets: freeCount(), how: lease.reservation ? "reservation" : "reused-by-public-ip" };
    }
    if (lease.reservation) {
      logger.warn({ key: lease.key }, `reservation for our PublicIP ${attrs.publicIP} does not fit the network config; leaving it alone`);
      continue;
    }
    logger.warn({ key: lease.key }, "lease for our PublicIP is not compatible with the current network config; deleting it");
    await store.deleteIfUnchanged(lease.key, lease.modRevision ?? "0");
    await revokeQuietly(store, lease.etcdLeaseId);
    return undefined;
  }

  const previous = request.previousSubnet;
  const previousKey = previous ? listing.keys.find((stored) => stored.key === subnetKey(store.subnetsPrefix, previous)) : undefined;
  if (previous && previousKey && fitsConfig(previous, config) && !leases.some((lease) => lease.key === previousKey.key)) {
    // Our subnet's key holds garbage: no host can be using it through that value, and docker0
    // still has the subnet. Take it back rather than move to a new one.
    const reclaimed = await reclaimMalformed(request, previous, previousKey.modRevision);
    if (!reclaimed) return undefined;
    logger.warn({ key: previousKey.key, subnet: previous.toString() }, `the key of our previous subnet ${previousKey.key} held a malformed value; rewrote it with ours`);
    return { lease: reclaimed, freeSubnets: freeCount(), how: "reclaimed-malformed" };
  }
  if (previous && fitsConfig(previous, config) && !occupied.some((subnet) => subnet.overlaps(previous))) {
    const created = await createLease(request, previous);
    if (!created) return undefined;
    logger.info({ subnet: previous.toString() }, "reusing the previously leased subnet");
    return { lease: created, freeSubnets: freeCount() - 1, how: "previous-subnet" };
  } else if (previous && !fitsConfig(previous, config)) {
    logger.warn({ subnet: previous.toString() }, "the previous subnet does not fit the network config; ignoring it");
  }

  const candidates = freeSubnets(config, occupied, CANDIDATES_TO_PICK_FROM);
  if (candidates.length === 0) throw new OutOfSubnetsError(config, occupied.length);
  const random = request.random ?? Math.random;
  const choice = candidates[Math.floor(random() * candidates.length)] as Ipv4Subnet;
  const created = await createLease(request, choice);
  if (!created) return undefined;
  return { lease: created, freeSubnets: freeCount() - 1, how: "allocated" };
}

/**
 * A lease carrying our PublicIP is ours to reuse only with a proof that this host held it: a
 * reservation (the operator's), our previous subnet (subnet.env, or the lease just lost), the
 * etcd lease our state dir recorded, or the same non-empty backend data (a VtepMAC kept in the
 * state dir). Without one it may belong to another live host started with the same
 * --public-ip: taking it over would revoke that host's etcd lease and share its subnet.
 */
function isOurs(request: AcquireRequest, lease: Lease): boolean {
  if (lease.reservation) return true;
  if (request.previousSubnet?.equals(lease.subnet)) return true;
  if (request.previousEtcdLeaseId !== undefined && request.previousEtcdLeaseId === lease.etcdLeaseId) return true;
  return request.attrs.backendData !== undefined && sameAttrs(request.attrs, lease.attrs);
}

/** Replaces a malformed value in our previous subnet's key with ours, on a fresh etcd lease. */
async function reclaimMalformed(request: AcquireRequest, subnet: Ipv4Subnet, modRevision: string): Promise<Lease | undefined> {
  const { store, attrs, ttlSeconds } = request;
  const key = subnetKey(store.subnetsPrefix, subnet);
  const leaseId = await store.grantLease(ttlSeconds);
  if (!(await store.replaceIfUnchanged(key, formatLeaseValue(attrs), leaseId, modRevision))) {
    await revokeQuietly(store, leaseId);
    return undefined;
  }
  return { subnet, attrs, key, etcdLeaseId: leaseId, reservation: false, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
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

async function createLease(request: AcquireRequest, subnet: Ipv4Subnet): Promise<Lease | undefined> {
  const { store, attrs, ttlSeconds } = request;
  const key = subnetKey(store.subnetsPrefix, subnet);
  const leaseId = await store.grantLease(ttlSeconds);
  if (!(await store.createIfAbsent(key, formatLeaseValue(attrs), leaseId))) {
    await revokeQuietly(store, leaseId);
    return undefined;
  }
  return { subnet, attrs, key, etcdLeaseId: leaseId, reservation: false, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
}

async function revokeQuietly(store: LeaseStore, leaseId: string | undefined): Promise<void> {
  if (!leaseId) return;
  // The lease may already be gone (expired); nothing depends on this succeeding.
  await store.revokeLease(leaseId).catch(() => undefined);
}
