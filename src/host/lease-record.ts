import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isJsonObject, readField } from "../codec/json-fields.js";
import { writeFileAtomic } from "./atomic-file.js";

/**
 * The etcd lease this host last held, kept in --state-dir (which outlives a reboot, unlike
 * /run/flannel/subnet.env): the proof that a lease carrying our PublicIP is ours to reuse, and
 * not another host's started with the same --public-ip.
 *   {"key":"/coreos.com/network/subnets/10.66.36.0-24","etcdLeaseId":"7587880000000000001"}
 */
export interface LeaseRecord {
  key: string;
  etcdLeaseId: string;
}

const FILE_NAME = "lease.json";

export function leaseRecordPath(stateDir: string): string {
  return join(stateDir, FILE_NAME);
}

export async function writeLeaseRecord(stateDir: string, record: LeaseRecord): Promise<void> {
  await writeFileAtomic(leaseRecordPath(stateDir), `${JSON.stringify({ key: record.key, etcdLeaseId: record.etcdLeaseId })}\n`, "lease record (--state-dir)");
}

/** Undefined when there is none; throws naming the file when it is unreadable or malformed. */
export async function readLeaseRecord(stateDir: string): Promise<LeaseRecord | undefined> {
  const path = leaseRecordPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  return parseLeaseRecord(text, path);
}

export function parseLeaseRecord(text: string, path: string): LeaseRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${path}: not JSON`);
  }
  if (!isJsonObject(raw)) throw new Error(`${path}: not a JSON object`);
  const key = readField(raw, "key");
  const etcdLeaseId = readField(raw, "etcdLeaseId");
  if (typeof key !== "string" || key === "") throw new Error(`${path}: key ${JSON.stringify(key)} is not a string`);
  if (typeof etcdLeaseId !== "string" || !/^\d+$/.test(etcdLeaseId)) throw new Error(`${path}: etcdLeaseId ${JSON.stringify(etcdLeaseId)} is not a decimal lease id`);
  return { key, etcdLeaseId };
}
