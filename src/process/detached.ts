import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { commandLineIn } from "./run-command.js";

/**
 * Starts a long-running command detached (it outlives this process), output appended to
 * `logFile`; returns its PID. Stop it with terminatePids (./pids.ts).
 */
export function spawnDetached(command: string, args: readonly string[], logFile: string, env: NodeJS.ProcessEnv = process.env): number {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(command, args, { detached: true, stdio: ["ignore", fd, fd], env });
    // Without a listener a failed spawn's later "error" event would crash this process; the throw reports it.
    child.once("error", () => undefined);
    if (child.pid === undefined) throw new Error(`cannot start "${command}" (spawn failed; is it installed?)`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * spawnDetached inside a network namespace. `ip netns exec` execs the command in place, so the
 * returned PID is the command's own PID.
 */
export function spawnDetachedInNamespace(
  namespace: string,
  command: string,
  args: readonly string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const [file, argv] = commandLineIn(namespace, command, args);
  try {
    return spawnDetached(file, argv, logFile, env);
  } catch (error) {
    throw new Error(`cannot start "${command}" in namespace "${namespace}" (spawn failed; is iproute2 installed?)`, { cause: error });
  }
}
