import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { removeLabCgroups } from "./cgroups.js";
import { stopDockerd } from "./lab-docker.js";
import { boundNetworkNamespaces, pidsInNetworkNamespaces, unmountAllUnder } from "./mounts.js";
import { DEFAULT_LAB_NAME, defaultLabDir, readLabState, type LabState } from "./lab-state.js";
import { killNamespaceProcesses, listNamespaces } from "./netns.js";
import { runCommand } from "../process/run-command.js";
import { terminatePids } from "../process/pids.js";
import { allNamespaces, labNamespacePattern } from "./topology-plan.js";

export interface TeardownReport {
  namespaces: string[];
  /** Recorded PIDs that were still running and were stopped. */
  pids: number[];
  labDirRemoved: boolean;
}

/** Where a host's dockerd keeps its mounts: `<labDir>/hN/docker`, found without the state file. */
async function dockerDirs(labDir: string): Promise<string[]> {
  const entries = await readdir(labDir).catch(() => [] as string[]);
  return entries.filter((entry) => /^h\d+$/.test(entry)).map((entry) => join(labDir, entry, "docker"));
}

/**
 * Removes a lab: recorded processes (only if they still live in one of the lab's namespaces:
 * a PID from a stale file may belong to someone else by now), then every process inside the
 * lab's namespaces, the namespaces (found by name, so this works without the state file), and
 * the lab dir. Idempotent.
 */
export async function teardownLab(options: { name?: string; labDir?: string } = {}): Promise<TeardownReport> {
  const name = options.name ?? DEFAULT_LAB_NAME;
  const labDir = options.labDir ?? defaultLabDir(name);
  const state = await readLabState(labDir).catch(() => undefined);
  const pattern = labNamespacePattern(name);
  const present = new Set(await listNamespaces());
  const namespaces = [...new Set([
    ...[...present].filter((namespace) => pattern.test(namespace)),
    ...(state ? allNamespaces(state).filter((namespace) => present.has(namespace)) : []),
  ])];

  const namespaceInodes = new Set<number>();
  for (const namespace of namespaces) {
    const inode = await inodeOf(`/run/netns/${namespace}`);
    if (inode !== undefined) namespaceInodes.add(inode);
  }
  const recorded = state
    ? [state.etcd.pid, ...state.hosts.flatMap((host) => [host.daemonPid, host.dockerd?.pid])].filter((pid): pid is number => pid !== undefined)
    : [];
  const ours: number[] = [];
  for (const pid of recorded) {
    const inode = await inodeOf(`/proc/${pid}/ns/net`);
    if (inode !== undefined && namespaceInodes.has(inode)) ours.push(pid);
  }
  // dockerds first, gracefully (containers removed, then dockerd stops its containerd); whatever
  // is left of them is killed with the rest of the namespaces' processes below.
  if (state) {
    await Promise.all(
      state.hosts
        .filter((host) => host.dockerd?.pid !== undefined && ours.includes(host.dockerd.pid))
        .map((host) => stopDockerd(state, host).catch(() => undefined)),
    );
  }
  // Daemons first, so they do not log a storm of errors when etcd goes away under them.
  const etcdPid = state?.etcd.pid;
  await terminatePids(ours.filter((pid) => pid !== etcdPid), 5000);
  await terminatePids(ours.filter((pid) => pid === etcdPid), 5000);
  await Promise.all(namespaces.map((namespace) => killNamespaceProcesses(namespace, 3000)));
  // Docker containers whose namespace was never attached by name: found by the nsfs mounts dockerd left under its exec-root.
  const dockerDirsOfLab = await dockerDirs(labDir);
  for (const dir of dockerDirsOfLab) await terminatePids(await pidsInNetworkNamespaces(await boundNetworkNamespaces(dir)), 3000);
  if (namespaces.length > 0) {
    // -force: keep deleting the rest if one is already gone.
    await runCommand("ip", ["-force", "-batch", "-"], { input: namespaces.map((namespace) => `netns delete ${namespace}\n`).join(""), allowFailure: true });
  }
  const remaining = (await listNamespaces()).filter((namespace) => namespaces.includes(namespace));
  if (remaining.length > 0) {
    throw new Error(`could not delete network namespaces ${remaining.join(", ")}; try \`ip netns delete <name>\` by hand`);
  }
  const leftMounts = (await Promise.all(dockerDirsOfLab.map((dir) => unmountAllUnder(dir)))).flat();
  if (leftMounts.length > 0) {
    throw new Error(`could not unmount ${leftMounts.join(", ")} (left by the lab's dockerd); try \`umount -l <path>\` by hand`);
  }
  const leftCgroups = await removeLabCgroups(name);
  if (leftCgroups.length > 0) throw new Error(`could not remove cgroups ${leftCgroups.join(", ")} (processes still in them?)`);
  const labDirRemoved = await removeLabDir(labDir, name, state);
  return { namespaces, pids: ours, labDirRemoved };
}

/** Removes the lab dir only when it is recognisably a lab dir, so a wrong --lab-dir cannot wipe data. */
async function removeLabDir(labDir: string, name: string, state: LabState | undefined): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(labDir);
  } catch {
    return false;
  }
  const onlyLabEntries = entries.every((entry) => /^(h\d+|etcd|image|state\.json(\..*\.tmp)?)$/.test(entry));
  if (state?.name === name || onlyLabEntries) {
    await rm(labDir, { recursive: true, force: true });
    return true;
  }
  return false;
}

async function inodeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

