/*
 *                     <p>-ul  bridge ul0, 192.168.77.0/24
 *        +--------------+---------------+---------------+
 *   <p>-etcd .2     <p>-h1 .11       <p>-h2 .12      <p>-inet .254
 *   real etcd       docker0 10.66.1.1/24  docker0 10.66.2.1/24
 *                    |        |        |        |
 *                 <p>-h1c1 <p>-h1c2 <p>-h2c1 <p>-h2c2   (.2, .3 of each host subnet)
 *
 * No weft daemons here (daemons: "none"): the lab writes a static subnet.env per host,
 * and the test adds host-gw style routes by hand so `check` has a working overlay to measure.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { buildLab, openLab, teardownLab, type Lab } from "../../src/lab/lab.js";
import { listLinks, listNamespaces, uniquePrefix } from "../../src/lab/netns.js";
import { isAlive } from "../../src/process/pids.js";

const name = uniquePrefix().slice(0, -1);
const labDir = join(tmpdir(), `weft-lab-test-${name}`);
let lab: Lab;

beforeAll(async () => {
  lab = await buildLab({ name, labDir, hosts: 2, containersPerHost: 2, daemons: "none", internet: true });
});

afterAll(async () => {
  await teardownLab({ name, labDir });
  await rm(labDir, { recursive: true, force: true });
});

describe("lab topology without daemons", () => {
  it("builds every namespace with the planned names and records them in the state file", async () => {
    const namespaces = (await listNamespaces()).filter((ns) => ns.startsWith(`${name}-`)).sort();
    expect(namespaces).toEqual(
      [`${name}-etcd`, `${name}-h1`, `${name}-h1c1`, `${name}-h1c2`, `${name}-h2`, `${name}-h2c1`, `${name}-h2c2`, `${name}-inet`, `${name}-ul`].sort(),
    );
    const reopened = await openLab({ name, labDir });
    expect(reopened.state.hosts.map((host) => host.subnet)).toEqual(["10.66.1.0/24", "10.66.2.0/24"]);
    expect(reopened.containers.map((c) => c.address)).toEqual(["10.66.1.2", "10.66.1.3", "10.66.2.2", "10.66.2.3"]);
    expect(reopened.state.etcd.pid).toBeGreaterThan(1);
    expect(isAlive(reopened.state.etcd.pid as number)).toBe(true);
    expect(lab.timings?.total).toBeGreaterThan(0);
  });

  it("builds docker0 from subnet.env like dockerd --bip --mtu, with containers on it", async () => {
    const links = await listLinks(lab.host("h2").namespace);
    const docker0 = links.find((link) => link.ifname === "docker0");
    expect(docker0?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`)).toContain("10.66.2.1/24");
    expect(docker0?.mtu).toBe(1500);
    const route = await lab.container("h2c2").exec("ip", ["route", "show", "default"]);
    expect(route.stdout).toMatch(/default via 10\.66\.2\.1 dev eth0/);
    const sysctl = await lab.host("h1").exec("sysctl", ["-n", "net.ipv4.ip_forward", "net.ipv4.conf.eth0.rp_filter"]);
    expect(sysctl.stdout.split("\n").slice(0, 2)).toEqual(["1", "0"]);
  });

  it("reaches etcd at its underlay address from a host namespace", async () => {
    const put = await lab.etcdctl(["put", "/lab-test/key", "v"]);
    expect(put.stdout).toMatch(/OK/);
    const get = await lab.exec("h1", "etcdctl", [`--endpoints=${lab.etcdEndpoint}`, "get", "--print-value-only", "/lab-test/key"]);
    expect(get.stdout.trim()).toBe("v");
  });

  it("check reports cross-host failures without routes, and all green with host-gw routes added by hand", async () => {
    const before = await lab.checkTable();
    expect(before.ok).toBe(false);
    const sameHost = before.results.find((r) => r.from === "h1c1" && r.to === "h1c2" && r.kind === "ping");
    const crossHost = before.results.find((r) => r.from === "h1c1" && r.to === "h2c1" && r.kind === "ping");
    expect(sameHost?.ok).toBe(true);
    expect(crossHost?.ok).toBe(false);

    await lab.host("h1").exec("ip", ["route", "add", "10.66.2.0/24", "via", lab.host("h2").underlayAddress]);
    await lab.host("h2").exec("ip", ["route", "add", "10.66.1.0/24", "via", lab.host("h1").underlayAddress]);
    const after = await lab.checkTable();
    expect(after.table).toMatch(/all 14 checks passed/);
    expect(after.ok).toBe(true);
    const df = after.results.filter((r) => r.kind === "df");
    expect(df.map((r) => r.payload)).toEqual([1472, 1472]);
  });

  it("exec in the internet namespace sees only the underlay", async () => {
    const result = await lab.exec("inet", "ip", ["-4", "-o", "address", "show", "dev", "eth0"]);
    expect(result.stdout).toMatch(/192\.168\.77\.254\/24/);
    await expect(lab.exec("nosuch", "true")).rejects.toThrow(/has no "nosuch"/);
  });
});

describe("lab name clashes", () => {
  it("refuses a second lab of the same name (other lab dir) and leaves the first one intact", async () => {
    const otherDir = `${labDir}-second`;
    await expect(buildLab({ name, labDir: otherDir, hosts: 1, containersPerHost: 0, daemons: "none" })).rejects.toThrow(/already exist.*weft lab down --name/);
    expect((await listNamespaces()).filter((ns) => ns.startsWith(`${name}-`))).toHaveLength(9);
    expect(existsSync(otherDir)).toBe(false);
    expect(isAlive(lab.state.etcd.pid as number)).toBe(true);
  });
});

describe("lab teardown", () => {
  it("down after a simulated crash (processes killed, state file gone) still removes everything by name", async () => {
    const crashName = uniquePrefix().slice(0, -1);
    const crashDir = join(tmpdir(), `weft-lab-test-${crashName}`);
    const crashed = await buildLab({ name: crashName, labDir: crashDir, hosts: 2, containersPerHost: 1, daemons: "none" });
    const etcdPid = crashed.state.etcd.pid as number;
    // A stray process left in a host namespace, as a crashed daemon's child would be.
    const stray = await crashed.host("h2").exec("sh", ["-c", "sleep 300 >/dev/null 2>&1 & echo $!"]);
    const strayPid = Number(stray.stdout.trim());
    expect(isAlive(strayPid)).toBe(true);
    await rm(join(crashDir, "state.json"));

    const report = await teardownLab({ name: crashName, labDir: crashDir });
    expect(report.namespaces.length).toBe(6); // ul, etcd, h1, h2, h1c1, h2c1
    expect((await listNamespaces()).filter((ns) => ns.startsWith(`${crashName}-`))).toEqual([]);
    expect(isAlive(etcdPid)).toBe(false);
    expect(isAlive(strayPid)).toBe(false);
    expect(existsSync(crashDir)).toBe(false);
    // Idempotent: a second down finds nothing and does not fail.
    expect((await teardownLab({ name: crashName, labDir: crashDir })).namespaces).toEqual([]);
  });
});
