/*
 * `weft reserve --force` giving a live host's subnet to another host: the built CLI (dist/cli.js,
 * build first) against a real etcd, with the holder's and a peer's PeerWatcher running. The key is
 * deleted before the reservation is written, so the holder sees its key go first (the daemon
 * re-acquires elsewhere and ignores what its key holds meanwhile) rather than only an overwrite
 * to repair, and the peer takes the new holder instead of keeping the old one.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { formatLeaseValue } from "../../src/lease/lease-value.js";
import { parseLeaseValue } from "../../src/lease/lease-value.js";
import type { OwnLeaseAltered } from "../../src/lease/peer-leases.js";
import type { PeerEvent } from "../../src/lease/types.js";
import { PeerWatcher } from "../../src/lease/watch.js";
import { silentLogger } from "../../src/observe/logger.js";
import { useEtcd } from "../support/etcd.js";

const CLI = resolve("dist/cli.js");
const fixture = useEtcd();

describe("weft reserve --force for another host", () => {
  it("the holder sees its key deleted (not an overwrite to undo), a peer sees the new holder", async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing; run \`npm run build:ts\` first`);
    const store = fixture().newStore();
    const prefix = store.configKey.replace(/\/config$/, "");
    await store.put(store.configKey, '{"Network":"10.66.0.0/16","Backend":{"Type":"udp"}}');
    const key = `${store.subnetsPrefix}10.66.6.0-24`;
    const value = formatLeaseValue({ publicIP: "192.168.77.11", publicIPv6: null });
    const etcdLease = await store.grantLease(600);
    expect(await store.createIfAbsent(key, value, etcdLease)).toBe(true);
    const told: string[] = [];
    const holder = new PeerWatcher({
      store,
      logger: silentLogger(),
      ownLease: () => ({ key, attrs: parseLeaseValue(value), etcdLeaseId: etcdLease }),
      ownPublicIP: "192.168.77.11",
      onPeers: async () => undefined,
      onOwnLeaseLost: (why) => told.push(`lost: ${why}`),
      onOwnLeaseAltered: (change: OwnLeaseAltered) => told.push(`altered: ${change.kind}`),
      settleMs: 0,
    });
    const seen: PeerEvent[] = [];
    const peer = new PeerWatcher({ store, logger: silentLogger(), ownLease: () => undefined, ownPublicIP: "192.168.77.13", onPeers: async (events) => void seen.push(...events), onOwnLeaseLost: () => undefined, settleMs: 0 });
    await holder.start();
    await peer.start();
    try {
      const result = spawnSync(process.execPath, [CLI, "reserve", "10.66.6.0/24", "192.168.77.12", "--force", `--etcd-endpoints=${fixture().server.endpoint}`, `--etcd-prefix=${prefix}`], { encoding: "utf8" });
      expect(result.status, result.stderr).toBe(0);
      await expect.poll(() => told.length, { timeout: 5000 }).toBeGreaterThan(0);
      expect(told[0]).toBe("lost: the lease key was deleted");
      await expect.poll(() => seen.map((event) => `${event.kind} ${event.lease.attrs.publicIP}`).at(-1), { timeout: 5000 }).toBe("added 192.168.77.12");
      expect((await store.get(key))?.leaseId).toBe("0");
    } finally {
      await holder.stop();
      await peer.stop();
    }
  });
});
