import { readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * The cgroups a lab dockerd leaves behind: each host's dockerd runs with
 * --cgroup-parent=weft-lab-<name>-hN (cgroupfs), and the parent directory stays after its
 * containers are gone. Removed by that name, in every hierarchy (v1 controllers, v2, or both).
 */
const CGROUP_ROOT = "/sys/fs/cgroup";

/** Pure: whether a cgroup directory name is a parent of lab `name`'s containers. */
export function isLabCgroup(labName: string, entry: string): boolean {
  return entry.startsWith(`weft-lab-${labName}-`) && /^h\d+$/.test(entry.slice(`weft-lab-${labName}-`.length));
}

async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => join(dir, entry.name));
}

/** rmdir depth-first: a cgroup directory goes only when it has no children and no processes. */
async function removeCgroupTree(dir: string): Promise<boolean> {
  let removable = true;
  for (const child of await subdirectories(dir)) removable = (await removeCgroupTree(child)) && removable;
  if (!removable) return false;
  return rmdir(dir).then(() => true, () => false);
}

/** Removes lab `name`'s container cgroups; returns those that could not be removed (still in use). */
export async function removeLabCgroups(labName: string): Promise<string[]> {
  const hierarchies = [CGROUP_ROOT, ...(await subdirectories(CGROUP_ROOT))];
  const left: string[] = [];
  for (const hierarchy of hierarchies) {
    const entries = await readdir(hierarchy).catch(() => [] as string[]);
    for (const entry of entries.filter((candidate) => isLabCgroup(labName, candidate))) {
      const dir = join(hierarchy, entry);
      if (!(await removeCgroupTree(dir))) left.push(dir);
    }
  }
  return left;
}
