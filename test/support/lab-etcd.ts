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
