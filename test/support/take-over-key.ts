import type { Lab } from "../../src/lab/lab.js";

/**
 * Puts `value` at `key` the way another host taking the subnet over would: on an etcd lease of
 * its own (a value put by hand without a lease is an overwrite, which the holder undoes and
 * stays: docs/resilience.md, "A peer's lease overwritten").
 */
export async function takeOverKey(lab: Lab, key: string, value: string): Promise<void> {
  const grant = (await lab.etcdctl(["lease", "grant", "120"])).stdout;
  const leaseId = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
  if (!leaseId) throw new Error(`etcdctl lease grant printed no lease id: ${grant}`);
  await lab.etcdctl(["put", `--lease=${leaseId}`, key, value]);
}
