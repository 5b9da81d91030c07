/*
 * The control plane on its worst days, with `alloc` daemons (leases, no packets) in the lab:
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+-----------+-----------+
 *   <lab>-etcd  <lab>-h1    <lab>-h2    <lab>-h3 (started later)
 *   etcd :2379  weft run    weft run    weft run
 *
 * etcd restarted from an empty data dir, an own lease overwritten (garbage, other attrs), a
 * restart in that state, and a second daemon started with another host's --public-ip.
 * Each asserts what etcd holds afterwards, not only what the log says.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { startDaemon as spawnDaemon } from "../../src/lab/lab-daemon.js";
import { isAlive } from "../../src/process/pids.js";
import { etcdGet as etcdGetIn, subnetOf as subnetOfIn } from "../support/lab-etcd.js";
import { takeOverKey } from "../support/take-over-key.js";
import { useLab } from "../support/lab.js";

const PREFIX = "/coreos.com/network";
const lab = useLab("wtw", { hosts: 3, containersPerHost: 0, backend: "alloc", deferredHosts: ["h3"] });

const etcdGet = (key: string) => etcdGetIn(lab(), key);
const subnetOf = (host: string) => subnetOfIn(lab(), host);

const keyOf = async (host: string) => `${PREFIX}/subnets/${await subnetOf(host)}-24`;
const valueOf = (host: string) => `{"PublicIP":"${lab().host(host).underlayAddress}","PublicIPv6":null,"BackendType":"alloc"}`;
const log = (host: string) => readFile(lab().host(host).state.logFile, "utf8");

async function httpGet(host: string, path: string): Promise<string> {
  const url = `http://127.0.0.1:${lab().host(host).state.healthzPort}${path}`;
  const result = await lab().host(host).exec(process.execPath, ["-e", `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
  return result.stdout;
}

async function etcdErrors(host: string): Promise<number> {
  const match = /^weft_etcd_errors_total (\d+)/m.exec(await httpGet(host, "/metrics"));
  if (!match) throw new Error("no weft_etcd_errors_total in /metrics");
  return Number(match[1]);
}

async function readyz(host: string): Promise<{ ready: boolean; notes?: Record<string, string> }> {
  const url = `http://127.0.0.1:${lab().host(host).state.healthzPort}/readyz?format=json`;
  const result = await lab().host(host).exec(process.execPath, ["-e", `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`]);
  return JSON.parse(result.stdout) as { ready: boolean; notes?: Record<string, string> };
}

/** Polls until `check` holds; returns how long it took (ms). */
async function timeUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - started;
}

describe("worst days, alloc daemons in the lab", () => {
  it("etcd restarted from an empty data dir: the config is reported missing, then every host re-creates its lease with the same subnet within seconds", async () => {
    const before = { h1: await keyOf("h1"), h2: await keyOf("h2") };
    const pids = [lab().host("h1").state.daemonPid!, lab().host("h2").state.daemonPid!];
    await lab().restartEtcdEmpty();
    // Noticed without waiting for the 5-minute resync: the watch reconnects and lists again.
    const noticedMs = await timeUntil(async () => /the network config missing at \/coreos\.com\/network\/config/.test(await log("h1")), 20_000, "config missing logged");
    const ready = await readyz("h1");
    expect(ready.ready).toBe(true); // forwarding is unaffected
    expect(ready.notes?.networkConfig).toMatch(/^the network config missing at \/coreos\.com\/network\/config since /);
    expect(ready.notes?.lease).toMatch(/^being re-acquired \(the lease key was deleted\) since /);
    expect(await etcdGet(before.h1)).toBeUndefined(); // nothing re-created under a missing config

    await lab().restoreNetworkConfig();
    const recoveredMs = await timeUntil(
      async () => (await etcdGet(before.h1))?.value === valueOf("h1") && (await etcdGet(before.h2))?.value === valueOf("h2"),
      15_000,
      "leases re-created",
    );
    console.log(`etcd data loss: config missing noticed after ${noticedMs} ms; leases back ${recoveredMs} ms after the config was restored`);
    expect(recoveredMs).toBeLessThan(10_000);
    for (const host of ["h1", "h2"] as const) {
      expect(await keyOf(host)).toBe(before[host]);
      const stored = await etcdGet(before[host]);
      expect(stored!.lease).not.toBe("0");
      const ttl = await lab().etcdctl(["lease", "timetolive", BigInt(stored!.lease).toString(16)]);
      expect(ttl.stdout).toMatch(/granted with TTL\(86400s\)/);
    }
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    await expect.poll(async () => (await readyz("h1")).notes, { timeout: 5000 }).toBeUndefined();

    // A host joining now gets a subnet of its own, and every host sees it.
    await lab().startDaemon("h3");
    expect([before.h1, before.h2]).not.toContain(await keyOf("h3"));
    const listing = await lab().etcdctl(["get", "--prefix", `${PREFIX}/subnets/`, "--keys-only"]);
    expect(listing.stdout.split("\n").filter(Boolean).sort()).toEqual([before.h1, before.h2, await keyOf("h3")].sort());
  });

  it("a host whose subnet was taken while etcd was empty moves to another one, loudly, and leaves the taker alone", async () => {
    const key = await keyOf("h2");
    const pid = lab().host("h2").state.daemonPid!;
    await lab().restartEtcdEmpty();
    // Someone else takes h2's subnet before h2 can re-create it (the config is still missing for h2).
    await takeOverKey(lab(), key, '{"PublicIP":"192.168.77.97","PublicIPv6":null,"BackendType":"alloc"}');
    await lab().restoreNetworkConfig();
    await expect.poll(async () => (await keyOf("h2")) !== key, { timeout: 15_000 }).toBe(true);
    const moved = await keyOf("h2");
    expect((await etcdGet(moved))?.value).toBe(valueOf("h2"));
    expect((await etcdGet(key))?.value).toContain("192.168.77.97");
    expect(await log("h2")).toMatch(new RegExp(`"level":50.*"msg":"the subnet changed \\(.*\\): moved from ${key.slice(PREFIX.length + 9).replace("-24", "/24").replace(/\./g, "\\.")} to `));
    expect(isAlive(pid)).toBe(true);
    await lab().etcdctl(["del", key]);
  });

  it("garbage in a host's own lease is rewritten at once, naming the key, back on its etcd lease", async () => {
    const key = await keyOf("h1");
    const before = await etcdGet(key);
    await lab().etcdctl(["put", key, "{garbage"]); // etcdctl put also detaches the key from its etcd lease
    const repairedMs = await timeUntil(async () => (await etcdGet(key))?.value === valueOf("h1"), 10_000, "own lease rewritten");
    console.log(`own lease overwritten with garbage: rewritten after ${repairedMs} ms`);
    expect((await etcdGet(key))!.lease).toBe(before!.lease);
    expect(await log("h1")).toContain(`our lease ${key} was overwritten`);
    expect(await log("h1")).not.toMatch(new RegExp(`"key":"${key}".*skipping malformed lease`));
  });

  it("other valid attrs in a host's own lease (a wrong backend or VtepMAC) are rewritten too", async () => {
    const key = await keyOf("h1");
    await lab().etcdctl(["put", key, `{"PublicIP":"${lab().host("h1").underlayAddress}","PublicIPv6":null,"BackendType":"udp"}`]);
    await timeUntil(async () => (await etcdGet(key))?.value === valueOf("h1"), 10_000, "own lease rewritten");
    expect(await log("h1")).toContain(`our lease ${key} was overwritten (it holds {\\"PublicIP\\":\\"${lab().host("h1").underlayAddress}\\",\\"PublicIPv6\\":null,\\"BackendType\\":\\"udp\\"}, we advertise`);
  });

  it("restarted while its key holds garbage, a host takes its subnet back instead of leasing a new one", async () => {
    const key = await keyOf("h1");
    await lab().stopDaemon("h1");
    await lab().etcdctl(["put", key, "garbage"]);
    await lab().startDaemon("h1");
    expect(await keyOf("h1")).toBe(key);
    expect((await etcdGet(key))?.value).toBe(valueOf("h1"));
    expect(await log("h1")).toContain('"how":"reclaimed-malformed"');
  });

  it("a second daemon with another host's --public-ip is refused with an error naming it; the first keeps its lease untouched", async () => {
    const key = await keyOf("h1");
    const before = await etcdGet(key);
    const h1Pid = lab().host("h1").state.daemonPid!;
    const publicIP = lab().host("h1").underlayAddress;
    await lab().stopDaemon("h3");
    const host = lab().host("h3").state;
    await spawnDaemon(lab().state, host, [`--public-ip=${publicIP}`, `--subnet-file=${host.dir}/impostor-subnet.env`, `--state-dir=${host.dir}/impostor-state`]);
    await lab().save();
    await expect.poll(() => log("h3"), { timeout: 15_000 }).toContain(`PublicIP ${publicIP} is already leased by ${key}`);
    // Several retries later: no key holds the impostor, h1's key and etcd lease never changed hands.
    await expect.poll(async () => (await log("h3")).split("is already leased by").length, { timeout: 15_000 }).toBeGreaterThan(2);
    expect(await etcdGet(key)).toEqual(before);
    const ttl = await lab().etcdctl(["lease", "timetolive", BigInt(before!.lease).toString(16)]);
    expect(ttl.stdout).toMatch(/granted with TTL\(86400s\)/);
    expect(await log("h1")).not.toContain("the lease has expired in etcd");
    expect(isAlive(h1Pid)).toBe(true);
    expect(isAlive(host.daemonPid!)).toBe(true); // refused, still retrying: not exited
    await lab().stopDaemon("h3");
  });

  it("an etcd outage: /readyz stays ready with an 'etcd unreachable since' note, one error line, weft_etcd_errors_total counts", async () => {
    const errorsBefore = await etcdErrors("h1");
    const linesBefore = (await log("h1")).split("\n").length;
    await lab().stopEtcd();
    await expect.poll(async () => (await readyz("h1")).notes?.etcd ?? "", { timeout: 30_000 }).toMatch(/^unreachable since \d{4}-\d\d-\d\dT/);
    expect((await readyz("h1")).ready).toBe(true);
    expect(await etcdErrors("h1")).toBeGreaterThan(errorsBefore);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // the watch keeps retrying meanwhile
    await lab().startEtcd();
    await expect.poll(async () => (await readyz("h1")).notes?.etcd, { timeout: 30_000 }).toBeUndefined();
    const during = (await log("h1")).split("\n").slice(linesBefore - 1).join("\n");
    expect(during.match(/"msg":"etcd unreachable/g)).toHaveLength(1);
    expect(during).toMatch(/"msg":"etcd reachable again after /);
  });

  it("the network config replaced at runtime by another Network, then by garbage: refused loudly, nothing torn down", async () => {
    const keys = { h1: await keyOf("h1"), h2: await keyOf("h2") };
    const before = { h1: await etcdGet(keys.h1), h2: await etcdGet(keys.h2) };
    await lab().etcdctl(["put", `${PREFIX}/config`, '{"Network":"10.77.0.0/16","Backend":{"Type":"alloc"}}']);
    await expect.poll(() => log("h1"), { timeout: 10_000 }).toMatch(/the network config at \/coreos\.com\/network\/config is for another network \(Network 10\.66\.0\.0\/16 → 10\.77\.0\.0\/16, SubnetMin 10\.66\.1\.0 → 10\.77\.1\.0, SubnetMax 10\.66\.255\.0 → 10\.77\.255\.0\): refused/);
    expect((await readyz("h1")).notes?.networkConfig).toMatch(/is for another network/);
    await lab().etcdctl(["put", `${PREFIX}/config`, "{garbage"]);
    await expect.poll(() => log("h2"), { timeout: 10_000 }).toMatch(/the network config at \/coreos\.com\/network\/config is invalid \(/);
    await lab().restoreNetworkConfig();
    await expect.poll(async () => (await readyz("h1")).notes?.networkConfig, { timeout: 10_000 }).toBeUndefined();
    expect(await keyOf("h1")).toBe(keys.h1);
    expect(await etcdGet(keys.h1)).toEqual(before.h1);
    expect(await etcdGet(keys.h2)).toEqual(before.h2);
  });

  it("a host waiting on a full network takes a freed subnet at once, not at the end of its back-off", async () => {
    const prefix = "/weft-test-full/network";
    await lab().etcdctl(["put", `${prefix}/config`, '{"Network":"10.88.0.0/16","SubnetMin":"10.88.1.0","SubnetMax":"10.88.1.0","Backend":{"Type":"alloc"}}']);
    await lab().etcdctl(["put", `${prefix}/subnets/10.88.1.0-24`, '{"PublicIP":"192.168.77.96","PublicIPv6":null,"BackendType":"alloc"}']);
    const host = lab().host("h3").state;
    await lab().stopDaemon("h3");
    const subnetFile = `${host.dir}/full-subnet.env`;
    await spawnDaemon(lab().state, host, [`--etcd-prefix=${prefix}`, `--subnet-file=${subnetFile}`, `--state-dir=${host.dir}/full-state`]);
    await lab().save();
    // Four failures in: the next wait is 8 s.
    await expect.poll(async () => (await log("h3")).split("out of subnets").length - 1, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(4);
    await lab().etcdctl(["del", `${prefix}/subnets/10.88.1.0-24`]);
    const leasedMs = await timeUntil(async () => /FLANNEL_SUBNET=10\.88\.1\.1\/24/.test(await readFile(subnetFile, "utf8")), 15_000, "freed subnet leased");
    console.log(`full network: the freed subnet was leased ${leasedMs} ms after its key was deleted (the back-off had 8 s to go)`);
    expect(leasedMs).toBeLessThan(4000);
    expect(await log("h3")).toContain("a lease was freed; trying again now");
    await lab().stopDaemon("h3");
  });

  it("every line the daemons wrote is JSON (gRPC's own messages included)", async () => {
    for (const host of ["h1", "h2", "h3"]) {
      for (const line of (await log(host)).split("\n").filter(Boolean)) {
        expect(() => JSON.parse(line), `${host}: ${line}`).not.toThrow();
      }
    }
  });
});
