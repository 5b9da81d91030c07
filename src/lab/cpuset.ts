import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { terminatePids } from "../process/pids.js";

/**
 * `weft bench --cpu pinned`: each lab host confined to its own core by a cpuset cgroup named
 * `weft-bench-<lab>-<host>` (cgroup v1's cpuset hierarchy, or v2 with the cpuset controller).
 * Running processes are moved in whole (all threads); commands started for the host are wrapped
 * so they enter the cgroup before they exec, and everything they fork stays in it.
 */

const V1_ROOT = "/sys/fs/cgroup/cpuset";
const V2_ROOT = "/sys/fs/cgroup";

export interface Cpuset {
  dir: string;
  cpus: string;
}

/** Pure: the cgroup directory name of one lab host. */
export function cpusetName(labName: string, hostName: string): string {
  return `weft-bench-${labName}-${hostName}`;
}

async function cgroupRoot(): Promise<{ root: string; version: 1 | 2 }> {
  if (existsSync(join(V1_ROOT, "cpuset.cpus"))) return { root: V1_ROOT, version: 1 };
  const controllers = await readFile(join(V2_ROOT, "cgroup.controllers"), "utf8").catch(() => "");
  if (controllers.split(/\s+/).includes("cpuset")) return { root: V2_ROOT, version: 2 };
  throw new Error("--cpu pinned needs a cpuset cgroup: neither /sys/fs/cgroup/cpuset (v1) nor the v2 cpuset controller is available");
}

/** Creates the host's cpuset on `cpus` (e.g. "1"), memory nodes as the root's. */
export async function createCpuset(labName: string, hostName: string, cpus: string): Promise<Cpuset> {
  const { root, version } = await cgroupRoot();
  if (version === 2) {
    const control = join(root, "cgroup.subtree_control");
    if (!(await readFile(control, "utf8")).split(/\s+/).includes("cpuset")) await writeFile(control, "+cpuset");
  }
  const dir = join(root, cpusetName(labName, hostName));
  await mkdir(dir, { recursive: true });
  const mems = (await readFile(join(root, version === 1 ? "cpuset.mems" : "cpuset.mems.effective"), "utf8")).trim();
  await writeFile(join(dir, "cpuset.mems"), mems);
  await writeFile(join(dir, "cpuset.cpus"), cpus);
  return { dir, cpus };
}

/** Moves a running process, all its threads, into the cpuset. */
export async function moveIntoCpuset(cpuset: Cpuset, pid: number): Promise<void> {
  try {
    await writeFile(join(cpuset.dir, "cgroup.procs"), String(pid));
  } catch (error) {
    throw new Error(`cannot move PID ${pid} into ${cpuset.dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** The command line that runs `program args` inside the cpuset: a shell joins it, then execs. */
export function inCpuset(cpuset: Cpuset | undefined, program: string, args: readonly string[]): [string, string[]] {
  if (!cpuset) return [program, [...args]];
  return ["sh", ["-c", `echo $$ > ${join(cpuset.dir, "cgroup.procs")} && exec "$@"`, "sh", program, ...args]];
}

/** Removes the cpuset; processes still in it (the caller's, by then) are stopped by PID first. */
export async function removeCpuset(cpuset: Cpuset): Promise<void> {
  const pids = (await readFile(join(cpuset.dir, "cgroup.procs"), "utf8").catch(() => ""))
    .split("\n")
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
  if (pids.length > 0) await terminatePids(pids, 3000);
  await rmdir(cpuset.dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw new Error(`cannot remove cpuset ${cpuset.dir}: ${error.message}`, { cause: error });
  });
}
