/*
 * SIGTERM while etcd is down: the daemon exits at once and leaves its lease alone.
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+
 *   <lab>-etcd  <lab>-h1
 *   etcd :2379  weft run (alloc, 10 s TTL: a renewal every 5 s)
 *
 * etcd is stopped; the daemon is then waiting in a back-off (its lease keeper's after a failed
 * renewal; after a restart, the config read loop's). SIGTERM must end the process within 1 s,
 * and once etcd is back the lease key still holds the same value on the same etcd lease.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { startDaemon as spawnDaemon } from "../../src/lab/lab-daemon.js";
import { isAlive } from "../../src/process/pids.js";
import { useLab } from "../support/lab.js";

const PREFIX = "/coreos.com/network";
const DAEMON_ARGS = ["--subnet-lease-ttl=10"];
const lab = useLab("wto", { hosts: 1, containersPerHost: 0, backend: "alloc", daemonArgs: DAEMON_ARGS });

async function ownLeaseKey(): Promise<{ key: string; value: string; lease: string }> {
  const listing = await lab().etcdctl(["get", "--prefix", `${PREFIX}/subnets/`, "-w", "json"]);
  const kvs = (JSON.parse(listing.stdout) as { kvs?: { key: string; value: string }[] }).kvs ?? [];
  expect(kvs).toHaveLength(1);
  // Lease ids exceed 2^53: read the digits from the text, not through JSON numbers.
  const lease = /"lease":(\d+)/.exec(listing.stdout)?.[1] ?? "0";
  return { key: Buffer.from(kvs[0]!.key, "base64").toString(), value: Buffer.from(kvs[0]!.value, "base64").toString(), lease };
}

function logSince(offset: number): Promise<string> {
  return readFile(lab().host("h1").state.logFile, "utf8").then((text) => text.slice(offset));
}

/** SIGTERM to the daemon; how long until its process is gone (polled every 5 ms, up to 40 s). */
async function terminateAndTime(pid: number): Promise<number> {
  const started = performance.now();
  process.kill(pid, "SIGTERM");
  while (isAlive(pid) && performance.now() - started < 40_000) await new Promise((resolve) => setTimeout(resolve, 5));
  return performance.now() - started;
}

describe("SIGTERM during an etcd outage", () => {
  it("a running daemon whose renewals fail exits within 1 s and leaves its lease key as it was", async () => {
    const host = lab().host("h1").state;
    const before = await ownLeaseKey();
    const offset = (await readFile(host.logFile, "utf8")).length;
    await lab().stopEtcd();
    try {
      // Ready when the keeper has failed a renewal and is waiting to retry.
      await expect.poll(() => logSince(offset), { timeout: 20_000, interval: 100 }).toMatch(/renewing the lease failed/);
      const pid = host.daemonPid!;
      const exitMs = await terminateAndTime(pid);
      host.daemonPid = undefined;
      await lab().save();
      console.log(`exit after SIGTERM (running daemon, renewal back-off): ${exitMs.toFixed(0)} ms`);
      expect(exitMs).toBeLessThan(1000);
      expect(await logSince(offset)).toMatch(/"msg":"stopped"/);
      expect(await logSince(offset)).not.toMatch(/^weft: /m);
    } finally {
      await lab().startEtcd();
    }
    expect(await ownLeaseKey()).toEqual(before);
  });

  it("a daemon restarted during the outage, waiting for the config, exits within 1 s and leaves the lease key as it was", async () => {
    const host = lab().host("h1").state;
    await lab().startDaemon("h1");
    const before = await ownLeaseKey();
    await lab().stopDaemon("h1");
    await lab().stopEtcd();
    try {
      const offset = (await readFile(host.logFile, "utf8")).length;
      const pid = await spawnDaemon(lab().state, host, DAEMON_ARGS);
      await lab().save();
      await expect.poll(() => logSince(offset), { timeout: 20_000, interval: 100 }).toMatch(/cannot use the network config: etcd .*; retrying/);
      const exitMs = await terminateAndTime(pid);
      host.daemonPid = undefined;
      await lab().save();
      console.log(`exit after SIGTERM (restarted daemon, config read loop): ${exitMs.toFixed(0)} ms`);
      expect(exitMs).toBeLessThan(1000);
      expect(await logSince(offset)).toMatch(/"msg":"stopped"/);
    } finally {
      await lab().startEtcd();
    }
    expect(await ownLeaseKey()).toEqual(before);
  });
});
