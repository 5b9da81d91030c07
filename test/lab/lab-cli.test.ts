/*
 *                     <p>-ul  bridge ul0, 192.168.77.0/24
 *        +--------------+---------------+---------------+
 *   <p>-etcd .2     <p>-h1 .11       <p>-h2 .12      <p>-inet .254
 *   real etcd       weft run         weft run
 *                   (alloc)          (alloc)
 *                   docker0 =        docker0 =
 *                   FLANNEL_SUBNET   FLANNEL_SUBNET
 *                     |                |
 *                  <p>-h1c1         <p>-h2c1
 *
 * Drives `node dist/cli.js lab …` end to end with the alloc backend (which leases subnets but
 * moves no packets), so it tests the lab mechanics, not a data path. Build first: npm run build:ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { teardownLab } from "../../src/lab/lab.js";
import { readLabState, type LabState } from "../../src/lab/lab-state.js";
import { listNamespaces, uniquePrefix } from "../../src/lab/netns.js";
import { isAlive } from "../../src/process/pids.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";

const cli = weftCliPath();
const name = uniquePrefix().slice(0, -1);
const labDir = join(tmpdir(), `weft-lab-cli-${name}`);
const labFlags = [`--name=${name}`, `--lab-dir=${labDir}`];

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 90_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function ourNamespaces(namespaces: string[]): string[] {
  return namespaces.filter((namespace) => namespace.startsWith(`${name}-`));
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build:ts\` before the lab CLI tests`);
});

afterAll(async () => {
  await teardownLab({ name, labDir });
  await rm(labDir, { recursive: true, force: true });
});

describe("weft lab (CLI, alloc backend)", () => {
  let state: LabState;

  it("up builds the lab, starts a daemon per host, and builds docker0 from each subnet.env", async () => {
    const up = await weft([
      "lab", "up", ...labFlags, "--hosts=2", "--containers=1", "--backend=alloc",
      "--backend-option", "Note=x", "--backend-option=Level=3", "--daemon-arg=--reconcile-interval=30", "--daemon-arg=--log-level=debug",
    ]);
    expect(up.stderr + up.stdout).toMatch(/up in [\d.]+ s/);
    expect(up.code).toBe(0);
    state = (await readLabState(labDir)) as LabState;
    // Repeatable flags reach the config and every daemon, in order, flag-like values included.
    expect(state.networkConfig?.Backend).toEqual({ Type: "alloc", Note: "x", Level: 3 });
    const cmdline = (await readFile(`/proc/${state.hosts[0]?.daemonPid}/cmdline`, "utf8")).replace(/\0$/, "").split("\0");
    expect(cmdline.slice(-2)).toEqual(["--reconcile-interval=30", "--log-level=debug"]);
    expect(state.hosts).toHaveLength(2);
    for (const host of state.hosts) {
      expect(isAlive(host.daemonPid as number)).toBe(true);
      const env = await readFile(host.subnetFile, "utf8");
      const subnet = /FLANNEL_SUBNET=(\S+)/.exec(env)?.[1];
      expect(subnet).toBe(host.bridgeAddress);
      expect(env).toMatch(/FLANNEL_MTU=1500/); // alloc: MTU of the underlay interface
    }
    expect(new Set(state.hosts.map((host) => host.subnet)).size).toBe(2);
    expect(up.stdout).toContain(state.containers[0]?.address as string);
  });

  it("status reports every daemon ready and etcd running", async () => {
    const status = await weft(["lab", "status", ...labFlags]);
    expect(status.code).toBe(0);
    expect(status.stdout.match(/ ready$/gm)).toHaveLength(2);
    expect(status.stdout).toMatch(/etcd .* running\)/);
    expect(status.stdout).not.toMatch(/MISSING/);
  });

  it("exec runs in the named namespace and passes the exit code through", async () => {
    const route = await weft(["lab", "exec", ...labFlags, "h1c1", "--", "ip", "-4", "route", "show", "default"]);
    expect(route.code).toBe(0);
    expect(route.stdout).toContain(`default via ${state.hosts[0]?.bridgeAddress?.split("/")[0]} dev eth0`);
    const failing = await weft(["lab", "exec", ...labFlags, "h2", "--", "sh", "-c", "exit 7"]);
    expect(failing.code).toBe(7);
    const unknown = await weft(["lab", "exec", ...labFlags, "h9", "--", "true"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/has no "h9"/);
  });

  it("check exits 1 and marks cross-host rows failed, because alloc moves no packets", async () => {
    const check = await weft(["lab", "check", ...labFlags, "--json"]);
    expect(check.code).toBe(1);
    const report = JSON.parse(check.stdout) as { ok: boolean; results: { from: string; to: string; ok: boolean; kind: string }[] };
    expect(report.ok).toBe(false);
    expect(report.results.filter((r) => r.kind === "ping")).toHaveLength(2);
    expect(report.results.every((r) => !r.ok)).toBe(true);
  });

  it("down removes namespaces, daemons, etcd and the lab dir", async () => {
    const pids = [state.etcd.pid as number, ...state.hosts.map((host) => host.daemonPid as number)];
    const down = await weft(["lab", "down", ...labFlags]);
    expect(down.code).toBe(0);
    expect(ourNamespaces(await listNamespaces())).toEqual([]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(existsSync(labDir)).toBe(false);
  });

  it("down after a crash (daemons and etcd SIGKILLed, state file deleted) still removes every namespace", async () => {
    const up = await weft(["lab", "up", ...labFlags, "--hosts=2", "--containers=1", "--backend=alloc", "--no-internet"]);
    expect(up.code).toBe(0);
    const crashed = (await readLabState(labDir)) as LabState;
    const pids = [crashed.etcd.pid as number, ...crashed.hosts.map((host) => host.daemonPid as number)];
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await rm(join(labDir, "state.json"));
    expect(ourNamespaces(await listNamespaces())).toHaveLength(6);

    const down = await weft(["lab", "down", ...labFlags]);
    expect(down.code).toBe(0);
    expect(down.stdout).toMatch(/6 namespaces/);
    expect(ourNamespaces(await listNamespaces())).toEqual([]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});
