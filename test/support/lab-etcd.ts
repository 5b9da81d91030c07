import { readFile } from "node:fs/promises";
import type { Lab } from "../../src/lab/lab.js";

/** A key as etcd stores it in a lab: its value and the id of its etcd lease ("0": none). */
export interface StoredKey {
  value: string;
  lease: string;
}

export async function etcdGet(lab: Lab, key: string): Promise<StoredKey | undefined> {
  const result = await lab.etcdctl(["get", key, "-w", "json"]);
  const kvs = (JSON.parse(result.stdout) as { kvs?: { value: string }[] }).kvs;
  if (!kvs?.[0]) return undefined;
  // Lease ids exceed 2^53: read the digits from the text, not through JSON numbers.
  const lease = /"lease":(\d+)/.exec(result.stdout)?.[1] ?? "0";
  return { value: Buffer.from(kvs[0].value, "base64").toString(), lease };
}

/** A lab host's leased /24 (network address) from its subnet file. */
export async function subnetOf(lab: Lab, host: string): Promise<string> {
  const text = await readFile(lab.host(host).state.subnetFile, "utf8");
  const match = /FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24/.exec(text);
  if (!match) throw new Error(`no FLANNEL_SUBNET in ${text}`);
  return `${match[1]}.0`;
}

/** Every lease under flannel's default prefix: its key (…/subnets/10.66.3.0-24) and its JSON value parsed as `T`. */
export async function leases<T>(lab: Lab): Promise<{ key: string; value: T }[]> {
  const listed = (await lab.etcdctl(["get", "--prefix", "/coreos.com/network/subnets/"])).stdout.trim().split("\n");
  // etcdctl prints each key, then its value, on lines of their own.
  const result: { key: string; value: T }[] = [];
  for (let i = 0; i + 1 < listed.length; i += 2) result.push({ key: listed[i] as string, value: JSON.parse(listed[i + 1] as string) as T });
  return result;
}

/** The JSON values of every lease, parsed as `T`. */
export async function leaseValues<T>(lab: Lab): Promise<T[]> {
  return (await leases<T>(lab)).map((lease) => lease.value);
}
