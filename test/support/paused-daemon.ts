/**
 * Runs `work` with a daemon stopped (SIGSTOP) and continues it afterwards, also on failure: a
 * running daemon repairs kernel drift at once on its kernel event, so a test that wants `weft
 * doctor` to see the drift pauses it.
 */
export async function withDaemonPaused(pid: number | undefined, work: () => Promise<void>): Promise<void> {
  if (pid === undefined) throw new Error("the host has no daemon PID to pause");
  process.kill(pid, "SIGSTOP");
  try {
    await work();
  } finally {
    process.kill(pid, "SIGCONT");
  }
}
