import type { Logger } from "pino";
import type { StoredKey } from "../store/records.js";
import { parseLeaseValue } from "./lease-value.js";
import { parseSubnetKey, subnetKeyProblem } from "./subnet-key.js";
import type { Lease } from "./types.js";
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
