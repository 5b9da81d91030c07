/*
 * 20 `alloc` daemons start at once and race for a network with room for 16 subnets:
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+-----------+---  …  ---+
 *   <lab>-etcd  <lab>-h1    <lab>-h2      <lab>-h20
 *   etcd        weft run    weft run      weft run     (all started together)
 *
 * Expected: 16 distinct leases, 4 daemons that say "out of subnets" and keep running
 * (a lease may free up later), no crash; then SIGTERM to all: every one exits within 5 s.
 */
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
import { startDaemon } from "../../src/lab/lab-daemon.js";
import { isAlive } from "../../src/process/pids.js";
import { useLab } from "../support/lab.js";

const lab = useLab("wtr", { hosts: 20, containersPerHost: 0, daemons: "none" });

it("20 daemons racing for 16 subnets: 16 distinct leases, 4 clean out-of-subnets errors, no crash", async () => {
  const config = '{"Network":"10.66.0.0/16","SubnetMin":"10.66.100.0","SubnetMax":"10.66.115.0","Backend":{"Type":"alloc"}}';
  await lab().etcdctl(["put", "/coreos.com/network/config", config]);
  await Promise.all(lab().hosts.map((host) => startDaemon(lab().state, host.state)));
  await lab().save();

  const leases = async () => {
    const result = await lab().etcdctl(["get", "--prefix", "--keys-only", "/coreos.com/network/subnets/"]);
    return result.stdout.split("\n").filter(Boolean);
  };
  await expect.poll(async () => (await leases()).length, { timeout: 60_000, interval: 500 }).toBe(16);
  const logs = () => Promise.all(lab().hosts.map((host) => readFile(host.state.logFile, "utf8").catch(() => "")));
  await expect
    .poll(async () => (await logs()).filter((text) => /out of subnets: all \/24 subnets of Network 10\.66\.0\.0\/16/.test(text)).length, {
      timeout: 30_000,
      interval: 500,
    })
    .toBe(4);

  const keys = await leases();
  expect(new Set(keys).size).toBe(16);
  for (const key of keys) {
    const third = Number(/10\.66\.(\d+)\.0-24$/.exec(key)?.[1]);
    expect(third).toBeGreaterThanOrEqual(100);
    expect(third).toBeLessThanOrEqual(115);
  }
  // The 16th lease can be in etcd a moment before its daemon has written its subnet file (a loaded machine).
  await expect
    .poll(async () => (await logs()).filter((text) => text.includes('"msg":"wrote the subnet file"')).length, { timeout: 30_000, interval: 200 })
    .toBe(16);
  const texts = await logs();
  for (const host of lab().hosts) expect(isAlive(host.state.daemonPid!)).toBe(true);
  for (const text of texts) expect(text).not.toMatch(/"level":60|Unhandled|TypeError/);

  // SIGTERM to all at once, the 4 without a subnet waiting in their back-off: all exit within
  // seconds (the stop is a signal through every sleep, not a flag checked after it).
  const pids = lab().hosts.map((host) => host.state.daemonPid!);
  const signalled = Date.now();
  for (const pid of pids) process.kill(pid, "SIGTERM");
  await expect.poll(() => pids.filter((pid) => isAlive(pid)).length, { timeout: 15_000, interval: 50 }).toBe(0);
  expect(Date.now() - signalled).toBeLessThan(5000);
  for (const host of lab().hosts) host.state.daemonPid = undefined;
  expect((await leases()).length).toBe(16); // the leases stay for the restart
}, 120_000);
