import { readdir, readFile, stat } from "node:fs/promises";
import { runCommand } from "../process/run-command.js";

/**
 * Mounts and namespaces a lab dockerd leaves under its directory (overlay rootfs, nsfs bind
 * mounts of container network namespaces, its data-root bind mount), found and removed by path
 * so that `lab down` leaves nothing behind even after dockerd was killed.
 */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Pure: the mounts of a mountinfo text at or below `dir`, deepest first. */
export function parseMountsUnder(mountinfo: string, dir: string): MountEntry[] {
  const base = dir.replace(/\/+$/, "");
  const entries: MountEntry[] = [];
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    if (fields.length < 5 || separator < 0) continue;
    const mountPoint = unescapeMountPath(fields[4] as string);
    if (mountPoint !== base && !mountPoint.startsWith(`${base}/`)) continue;
    entries.push({ mountPoint, fsType: fields[separator + 1] ?? "" });
  }
  return entries.sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  return parseMountsUnder(await readFile("/proc/self/mountinfo", "utf8"), dir);
}

/**
 * Unmounts everything at or below `dir`, deepest first (lazily when a mount is busy); returns
 * the mount points still there afterwards (normally none).
 */
export async function unmountAllUnder(dir: string): Promise<string[]> {
  for (let pass = 0; pass < 5; pass++) {
    const mounts = await mountsUnder(dir);
    if (mounts.length === 0) return [];
    for (const { mountPoint } of mounts) {
      const plain = await runCommand("umount", [mountPoint], { allowFailure: true, timeoutMs: 10_000 });
      if (plain.exitCode !== 0) await runCommand("umount", ["-l", mountPoint], { allowFailure: true, timeoutMs: 10_000 });
    }
  }
  return (await mountsUnder(dir)).map((mount) => mount.mountPoint);
}

/** Inodes of the network namespaces bound (nsfs mounts) at or below `dir`. */
export async function boundNetworkNamespaces(dir: string): Promise<Set<number>> {
  const inodes = new Set<number>();
  for (const mount of await mountsUnder(dir)) {
    if (mount.fsType !== "nsfs") continue;
    const inode = await stat(mount.mountPoint).then((s) => s.ino, () => undefined);
    if (inode !== undefined) inodes.add(inode);
  }
  return inodes;
}

/** PIDs of the processes whose network namespace is one of `inodes` (a /proc scan, by inode, never by name). */
export async function pidsInNetworkNamespaces(inodes: ReadonlySet<number>): Promise<number[]> {
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const inode = await stat(`/proc/${entry}/ns/net`).then((s) => s.ino, () => undefined);
    if (inode !== undefined && inodes.has(inode)) pids.push(Number(entry));
  }
  return pids;
}
