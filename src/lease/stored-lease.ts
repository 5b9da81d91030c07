import type { Logger } from "pino";
import type { StoredKey } from "../store/records.js";
import { parseLeaseValue } from "./lease-value.js";
import { parseSubnetKey, subnetKeyProblem } from "./subnet-key.js";
import type { Lease, LeaseAttrs } from "./types.js";
import { NO_PUBLIC_IP } from "./host-address.js";
import { errorMessage } from "../errors/error-message.js";

/** A stored subnet key as a Lease; throws naming the key when the key or value is malformed. */
export function decodeLease(stored: StoredKey): Lease {
  const parts = parseSubnetKey(stored.key);
  if (!parts) throw new Error(`${stored.key}: ${subnetKeyProblem(stored.key)}`);
  let attrs;
  try {
    attrs = parseLeaseValue(stored.value);
  } catch (error) {
    throw new Error(`${stored.key}: ${errorMessage(error)}`, { cause: error });
  }
  if (!parts.subnet) checkIpv6OnlyAttrs(stored.key, attrs);
  const reservation = stored.leaseId === "0";
  return {
    ...parts,
    attrs,
    key: stored.key,
    reservation,
    ...(reservation ? {} : { etcdLeaseId: stored.leaseId }),
    modRevision: stored.modRevision,
  };
}

/**
 * An IPv6-only lease (key 0.0.0.0-0&…) is reached at its PublicIPv6 alone, and flanneld writes its
 * PublicIP as 0.0.0.0: without a PublicIPv6, or with a real PublicIP, no host can tell whose it is.
 */
function checkIpv6OnlyAttrs(key: string, attrs: LeaseAttrs): void {
  if (attrs.publicIPv6 === null) {
    throw new Error(`${key}: an IPv6-only lease (no IPv4 subnet in its key) must advertise a PublicIPv6, and its value has none`);
  }
  if (attrs.publicIP !== NO_PUBLIC_IP) {
    throw new Error(`${key}: an IPv6-only lease says PublicIP ${NO_PUBLIC_IP} (flanneld's zero address), not ${attrs.publicIP}`);
  }
}

/** A key that is not a lease weft can read, and what is wrong with it. */
export interface MalformedLease {
  key: string;
  problem: string;
}

/** Decodes every key it can and says which it could not; never throws. */
export function readLeases(keys: readonly StoredKey[]): { leases: Lease[]; malformed: MalformedLease[] } {
  const leases: Lease[] = [];
  const malformed: MalformedLease[] = [];
  for (const stored of keys) {
    try {
      leases.push(decodeLease(stored));
    } catch (error) {
      malformed.push({ key: stored.key, problem: errorMessage(error) });
    }
  }
  return { leases, malformed };
}

/** Decodes every key it can; a malformed one is skipped with a warning naming it, never fatal. */
export function decodeLeases(keys: readonly StoredKey[], logger: Logger): Lease[] {
  const { leases, malformed } = readLeases(keys);
  for (const skipped of malformed) warnMalformed(logger, skipped);
  return leases;
}

export function warnMalformed(logger: Logger, { key, problem }: MalformedLease): void {
  logger.warn({ key }, `skipping malformed lease: ${problem}`);
}
