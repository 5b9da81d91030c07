/*
 * Shared by the tests of `lab up --docker` (a real dockerd per lab host): what "nothing left
 * behind" means after `lab down` — no dockerd, containerd or shim naming the lab dir, no lab
 * namespace, mount or container cgroup, no lab dir.
 */
import { expect } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { teardownLab, type Lab } from "../../src/lab/lab.js";
import { listNamespaces } from "../../src/lab/netns.js";
import { mountsUnder } from "../../src/lab/mounts.js";
import { isAlive } from "../../src/process/pids.js";

/** PIDs of processes whose command line names `dir` (dockerd, its containerd, the shims). */
export function processesNaming(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmdline.includes(dir) && isAlive(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

/** The lab's container cgroup parents (weft-lab-<name>-hN) in every cgroup hierarchy. */
export function labCgroups(name: string): string[] {
  const hierarchies = ["/sys/fs/cgroup", ...readdirSync("/sys/fs/cgroup").map((entry) => join("/sys/fs/cgroup", entry))];
  return hierarchies.flatMap((dir) => {
    try {
      return readdirSync(dir).filter((entry) => entry.startsWith(`weft-lab-${name}-`)).map((entry) => join(dir, entry));
    } catch {
      return [];
    }
  });
}

/** The arguments a lab host's dockerd runs with, from /proc (not from the lab's own record). */
export function dockerdCmdline(lab: Lab, hostName: string): string[] {
  const pid = lab.host(hostName).state.dockerd?.pid;
  if (pid === undefined) throw new Error(`host ${hostName} has no dockerd PID`);
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
}

/** Tears the lab down and checks that nothing of it is left. */
export async function downAndExpectNothingLeft(lab: Lab, name: string, labDir: string): Promise<void> {
  const containerPids = lab.containers.map((container) => container.state.docker?.pid).filter((pid): pid is number => pid !== undefined);
  const dockerdPids = lab.hosts.map((host) => host.state.dockerd?.pid).filter((pid): pid is number => pid !== undefined);
  expect(containerPids).toHaveLength(lab.containers.length);
  expect(processesNaming(labDir).length).toBeGreaterThanOrEqual(dockerdPids.length * 2); // dockerd + containerd per host, shims

  await teardownLab({ name, labDir });

  expect([...dockerdPids, ...containerPids].filter(isAlive)).toEqual([]);
  expect(processesNaming(labDir)).toEqual([]);
  expect((await listNamespaces()).filter((namespace) => namespace.startsWith(`${name}-`))).toEqual([]);
  expect(await mountsUnder(labDir)).toEqual([]);
  expect(labCgroups(name)).toEqual([]);
  expect(existsSync(labDir)).toBe(false);
}
