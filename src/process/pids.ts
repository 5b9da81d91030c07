import { readFileSync } from "node:fs";
import { sleep } from "../async/sleep.js";

/** Checking and stopping processes by PID, never by name (the lab, the tests, the benchmarks). */

/** True while the process runs; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM means it exists but is not ours; as root that does not happen, but be exact.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // /proc/<pid>/stat is "pid (comm) S ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** SIGTERM each PID, wait up to `graceMs` for them to exit, then SIGKILL the rest. */
export async function terminatePids(pids: readonly number[], graceMs = 3000): Promise<void> {
  const living = pids.filter((pid) => pid > 1 && pid !== process.pid && isAlive(pid));
  for (const pid of living) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && living.some(isAlive)) await sleep(50);
  for (const pid of living) if (isAlive(pid)) signal(pid, "SIGKILL");
  const killDeadline = Date.now() + 2000;
  while (Date.now() < killDeadline && living.some(isAlive)) await sleep(20);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone between the check and the signal.
  }
}
