import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Sends SIGSTOP and returns once every thread of `pid` is stopped: the signal is delivered
 * asynchronously, and a thread of a loaded machine can still answer one request after kill()
 * returned (seen once: a SIGSTOPped etcd served a get 155 ms later).
 */
export async function stopProcess(pid: number, timeoutMs = 2000): Promise<void> {
  process.kill(pid, "SIGSTOP");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (allThreadsStopped(pid)) return;
    if (Date.now() > deadline) throw new Error(`process ${pid}: not every thread stopped ${timeoutMs} ms after SIGSTOP`);
    await sleep(5);
  }
}

/** Whether each /proc/<pid>/task/<tid>/stat says T (stopped) or t (traced stop). */
function allThreadsStopped(pid: number): boolean {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.every((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    // The state follows the command name, which is in parentheses and may hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "T" || state === "t";
  });
}

/**
 * Runs `work` with a daemon stopped (SIGSTOP) and continues it afterwards, also on failure: a
 * running daemon repairs kernel drift at once on its kernel event, so a test that wants `weft
 * doctor` to see the drift pauses it.
 */
export async function withDaemonPaused(pid: number | undefined, work: () => Promise<void>): Promise<void> {
  if (pid === undefined) throw new Error("the host has no daemon PID to pause");
  try {
    await stopProcess(pid);
    await work();
  } finally {
    process.kill(pid, "SIGCONT");
  }
}
