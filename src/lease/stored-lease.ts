import type { Logger } from "pino";
import type { StoredKey } from "../store/etcd-store.js";
import { parseLeaseValue } from "./lease-value.js";
import { parseSubnetKey } from "./subnet-key.js";
import type { Lease } from "./types.js";
import { errorMessage } from "../errors/error-message.js";

/** A stored subnet key as a Lease; throws naming the key when the key or value is malformed. */
export function decodeLease(stored: StoredKey): Lease {
  const parts = parseSubnetKey(stored.key);
  if (!parts) throw new Error(`${stored.key}: not a subnet key (expected <prefix>/subnets/a.b.c.d-len)`);
  let attrs;
  try {
    attrs = parseLeaseValue(stored.value);
  } catch (error) {
    throw new Error(`${stored.key}: ${errorMessage(error)}`);
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

/** Decodes every key it can; a malformed one is skipped with a warning naming it, never fatal. */
export function decodeLeases(keys: readonly StoredKey[], logger: Logger): Lease[] {
  const leases: Lease[] = [];
  for (const stored of keys) {
    try {
      leases.push(decodeLease(stored));
    } catch (error) {
      logger.warn({ key: stored.key }, `skipping malformed lease: ${errorMessage(error)}`);
    }
  }
  return leases;
}
