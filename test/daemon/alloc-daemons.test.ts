/*
 * weft daemons with the `alloc` backend (leases, no packets) in the one-machine lab:
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+-----------+-----------+
 *   <lab>-etcd  <lab>-h1    <lab>-h2    <lab>-h3
 *   etcd :2379  weft run    weft run    weft run
 *
 * Exercises the control plane end to end: flannel-format keys, restart, own key deleted,
 * previous subnet from subnet.env, reservations, etcd outage, malformed config and leases, CLI.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { startDaemon as spawnDaemon, weftCliPath } from "../../src/lab/lab-daemon.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { isAlive } from "../../src/process/pids.js";
import { etcdGet as etcdGetIn, subnetOf as subnetOfIn } from "../support/lab-etcd.js";
import { takeOverKey } from "../support/take-over-key.js";
import { useLab } from "../support/lab.js";

const PREFIX = "/coreos.com/network";
const lab = useLab("wtd", { hosts: 3, containersPerHost: 0, backend: "alloc" });

const etcdGet = (key: string) => etcdGetIn(lab(), key);
const subnetOf = (host: string) => subnetOfIn(lab(), host);

/** Runs the weft CLI inside the etcd namespace, where the lab's etcd is reachable. */
function weft(args: string[], allowFailure = false) {
  return execInNamespace(lab().namespaceOf("etcd"), process.execPath, [weftCliPath(), ...args, `--etcd-endpoints=${lab().etcdEndpoint}`], {
    allowFailure,
  });
}

async function log(host: string): Promise<string> {
  return readFile(lab().host(host).state.logFile, "utf8");
}

describe("alloc daemons in the lab", () => {
  it("write flannel's exact keys and values, attached to a 24 h etcd lease", async () => {
    const listing = await lab().etcdctl(["get", "--prefix", PREFIX]);
    for (const host of lab().hosts) {
      const subnet = await subnetOf(host.name);
      const key = `${PREFIX}/subnets/${subnet}-24`;
      expect(listing.stdout).toContain(`${key}\n{"PublicIP":"${host.underlayAddress}","PublicIPv6":null,"BackendType":"alloc"}\n`);
      const stored = await etcdGet(key);
      const ttl = await lab().etcdctl(["lease", "timetolive", BigInt(stored!.lease).toString(16)]);
      expect(ttl.stdout).toMatch(/granted with TTL\(86400s\)/);
    }
    const env = await readFile(lab().host("h1").state.subnetFile, "utf8");
    expect(env).toMatch(/^FLANNEL_NETWORK=10\.66\.0\.0\/16\nFLANNEL_SUBNET=10\.66\.\d+\.1\/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n$/);
  });

  it("do not load the native addon (no NOTIFY_SOCKET, no userspace backend)", async () => {
    for (const host of lab().hosts) expect(await readFile(`/proc/${host.state.daemonPid!}/maps`, "utf8")).not.toContain("weft_engine.node");
  });

  it("reuse their subnet after a restart, on a new etcd lease with the old one revoked", async () => {
    const subnet = await subnetOf("h1");
    const key = `${PREFIX}/subnets/${subnet}-24`;
    const before = await etcdGet(key);
    await lab().stopDaemon("h1");
    await lab().startDaemon("h1");
    expect(await subnetOf("h1")).toBe(subnet);
    const after = await etcdGet(key);
    expect(after!.lease).not.toBe(before!.lease);
    const old = await lab().etcdctl(["lease", "timetolive", BigInt(before!.lease).toString(16)]);
    expect(old.stdout).toMatch(/already expired|not found/i);
    expect(await log("h1")).toContain('"how":"reused-by-public-ip"');
  });

  it("re-acquire the same subnet when their own key is deleted, without exiting", async () => {
    const subnet = await subnetOf("h2");
    const key = `${PREFIX}/subnets/${subnet}-24`;
    const pid = lab().host("h2").state.daemonPid!;
    await lab().etcdctl(["del", key]);
    await expect.poll(async () => (await etcdGet(key))?.value, { timeout: 10_000 }).toContain(`"PublicIP":"${lab().host("h2").underlayAddress}"`);
    expect(isAlive(pid)).toBe(true);
    expect(await log("h2")).toMatch(/the lease key was deleted; acquiring a lease again/);
  });

  it("take the previous subnet from subnet.env when their lease is gone at start", async () => {
    const subnet = await subnetOf("h2");
    await lab().stopDaemon("h2");
    await lab().etcdctl(["del", `${PREFIX}/subnets/${subnet}-24`]);
    await lab().startDaemon("h2");
    expect(await subnetOf("h2")).toBe(subnet);
    expect(await log("h2")).toContain('"how":"previous-subnet"');
  });

  it("keep a reservation without a TTL across restarts", async () => {
    const subnet = await subnetOf("h3");
    const key = `${PREFIX}/subnets/${subnet}-24`;
    const reserved = await weft(["reserve", `${subnet}/24`, lab().host("h3").underlayAddress]);
    expect(reserved.stdout).toContain(`reserved ${key}`);
    expect((await etcdGet(key))!.lease).toBe("0");
    await lab().stopDaemon("h3");
    await lab().startDaemon("h3");
    expect(await subnetOf("h3")).toBe(subnet);
    expect((await etcdGet(key))!.lease).toBe("0");
    const table = await weft(["leases"]);
    expect(table.stdout).toMatch(new RegExp(`${subnet.replace(/\./g, "\\.")}/24\\s+${lab().host("h3").underlayAddress.replace(/\./g, "\\.")}\\s+alloc\\s+-\\s+never\\s+yes`));
    const json = JSON.parse((await weft(["leases", "--json"])).stdout) as { subnet: string; reservation: boolean; expiresInSeconds: number | null }[];
    expect(json.find((row) => row.subnet === `${subnet}/24`)).toMatchObject({ reservation: true, expiresInSeconds: null });
    expect(json.filter((row) => !row.reservation).every((row) => (row.expiresInSeconds ?? 0) > 86_000)).toBe(true);
    // Unreserving hands it back to the running owner as an ordinary lease.
    await weft(["unreserve", `${subnet}/24`]);
    await expect.poll(async () => (await etcdGet(key))?.lease ?? "missing", { timeout: 10_000 }).not.toMatch(/^(0|missing)$/);
  });

  it("skip malformed lease values with a warning naming the key", async () => {
    await lab().etcdctl(["put", `${PREFIX}/subnets/10.66.250.0-24`, "{garbage"]);
    await lab().etcdctl(["put", `${PREFIX}/subnets/10.66.251.0-24`, '{"PublicIP":"192.168.77.99","PublicIPv6":null,"BackendType":"alloc"}']);
    await expect.poll(() => log("h1"), { timeout: 10_000 }).toMatch(/"key":"\/coreos\.com\/network\/subnets\/10\.66\.250\.0-24".*skipping malformed lease/);
    await expect.poll(() => log("h1"), { timeout: 10_000 }).toMatch(/"subnet":"10\.66\.251\.0\/24".*"msg":"peer added"/);
    for (const host of lab().hosts) expect(isAlive(host.state.daemonPid!)).toBe(true);
    await lab().etcdctl(["del", `${PREFIX}/subnets/10.66.250.0-24`]);
    await lab().etcdctl(["del", `${PREFIX}/subnets/10.66.251.0-24`]);
  });

  it("survive etcd being stopped and restarted, and then see new peers", async () => {
    const etcdPid = lab().state.etcd.pid!;
    await lab().stopEtcd();
    expect(isAlive(etcdPid)).toBe(false);
    // Asserts that nothing happens: the daemons ride out 4 s without etcd (no readiness to wait for).
    await new Promise((resolve) => setTimeout(resolve, 4000));
    for (const host of lab().hosts) expect(isAlive(host.state.daemonPid!)).toBe(true);
    await lab().startEtcd();
    await lab().etcdctl(["put", `${PREFIX}/subnets/10.66.252.0-24`, '{"PublicIP":"192.168.77.98","PublicIPv6":null,"BackendType":"alloc"}']);
    for (const host of lab().hosts) {
      await expect.poll(() => log(host.name), { timeout: 20_000 }).toMatch(/"subnet":"10\.66\.252\.0\/24".*"msg":"peer added"/);
    }
    for (const host of lab().hosts) expect(isAlive(host.state.daemonPid!)).toBe(true);
    await lab().etcdctl(["del", `${PREFIX}/subnets/10.66.252.0-24`]);
  });

  it("wait out a malformed network config, naming the field, and start once it is fixed", async () => {
    const prefix = "/weft-test-bad/network";
    await lab().etcdctl(["put", `${prefix}/config`, '{"Network":"10.77.0.0/16","SubnetLen":40,"Backend":{"Type":"alloc"}}']);
    await lab().stopDaemon("h3");
    const host = lab().host("h3").state;
    await spawnDaemon(lab().state, host, [`--etcd-prefix=${prefix}`, `--subnet-file=${host.dir}/bad-subnet.env`]);
    await lab().save();
    await expect.poll(() => log("h3"), { timeout: 10_000 }).toMatch(/cannot use the network config: SubnetLen: 40 is longer than \/30/);
    expect(isAlive(host.daemonPid!)).toBe(true);
    // A backend type weft does not know is waited out as well, not fatal.
    await lab().etcdctl(["put", `${prefix}/config`, '{"Network":"10.77.0.0/16","Backend":{"Type":"nope"}}']);
    await expect.poll(() => log("h3"), { timeout: 10_000 }).toMatch(/cannot use the network config: Backend\.Type: \\"nope\\" is not a backend weft knows/);
    expect(isAlive(host.daemonPid!)).toBe(true);
    const rejected = await weft(["config", "set", '{"Network":"10.77.0.0/16","Backend":{"Type":"nope"}}', `--etcd-prefix=${prefix}`], true);
    expect(rejected.exitCode).not.toBe(0);
    expect(rejected.stderr).toMatch(/Backend\.Type: "nope" is not a backend weft knows/);
    await weft(["config", "set", '{"Network":"10.77.0.0/16","Backend":{"Type":"alloc"}}', `--etcd-prefix=${prefix}`]);
    await expect
      .poll(async () => readFile(`${host.dir}/bad-subnet.env`, "utf8").catch(() => ""), { timeout: 10_000 })
      .toMatch(/FLANNEL_SUBNET=10\.77\./)
      .catch(async (error: Error) => {
        throw new Error(`${error.message}\n${(await log("h3")).slice(-3000)}`);
      });
    const shown = await weft(["config", "get", `--etcd-prefix=${prefix}`]);
    expect(shown.stdout.trim()).toBe('{"Network":"10.77.0.0/16","Backend":{"Type":"alloc"}}');
  });

  it("move to a new subnet when another host takes their key over, and keep the new lease alive", async () => {
    const subnet = await subnetOf("h1");
    const key = `${PREFIX}/subnets/${subnet}-24`;
    const pid = lab().host("h1").state.daemonPid!;
    await takeOverKey(lab(), key, '{"PublicIP":"192.168.77.97","PublicIPv6":null,"BackendType":"alloc"}');
    await expect.poll(() => subnetOf("h1"), { timeout: 15_000 }).not.toBe(subnet);
    const moved = await subnetOf("h1");
    const stored = await etcdGet(`${PREFIX}/subnets/${moved}-24`);
    expect(stored?.value).toContain(`"PublicIP":"${lab().host("h1").underlayAddress}"`);
    const ttl = await lab().etcdctl(["lease", "timetolive", BigInt(stored!.lease).toString(16)]);
    expect(ttl.stdout).toMatch(/granted with TTL\(86400s\)/);
    // The other host's claim is left alone, and h1 never treats its own new key as a peer.
    expect((await etcdGet(key))?.value).toContain('"PublicIP":"192.168.77.97"');
    expect(isAlive(pid)).toBe(true);
    const text = await log("h1");
    expect(text).toMatch(/the lease key was taken over by 192\.168\.77\.97; acquiring a lease again/);
    expect(text).toMatch(/the subnet changed \(the lease key was taken over by 192\.168\.77\.97\): moved from .*; docker0 must be reconfigured/);
    expect(text).not.toContain(`"subnet":"${moved}/24","publicIP":"${lab().host("h1").underlayAddress}"`);
    await lab().etcdctl(["del", key]);
  });

  it("exit 0 on SIGTERM while still waiting for a network config", async () => {
    const host = lab().host("h2").state;
    const child = spawn("ip", ["netns", "exec", host.namespace, process.execPath, weftCliPath(), "run", `--etcd-endpoints=${lab().etcdEndpoint}`,
      "--etcd-prefix=/weft-test-none/network", `--iface=${host.underlayDevice}`, `--subnet-file=${host.dir}/none.env`, `--state-dir=${host.stateDir}`], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await expect.poll(() => stderr, { timeout: 10_000 }).toContain("no network config at /weft-test-none/network/config");
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/^weft: /m);
  });
});
