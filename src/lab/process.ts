import { spawn } from "node:child_process";
import { sleep } from "../async/sleep.js";
import { closeSync, openSync, readFileSync } from "node:fs";

/**
 * Commands and processes for the lab and the tests: run a command to completion with an
 * actionable error, start one detached, check and stop processes by PID (never by name).
 */

/** A command that failed: what ran, where, its exit status and stderr, so the message is actionable. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly hint?: string,
  ) {
    const status = signal ? `killed by ${signal}` : `exit code ${exitCode}`;
    const detail = stderr.trim() || stdout.trim() || "(no output)";
    super(`\`${[command, ...args].join(" ")}\` failed (${status}): ${detail}${hint ? ` — ${hint}` : ""}`);
    this.name = "CommandError";
  }
}

export interface RunOptions {
  /** Written to the command's stdin (e.g. an `ip -batch -` script). */
  input?: string;
  /** Kill the command after this many milliseconds; default 30 s. */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  /** Appended to the error message (what the user should check). */
  hint?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and collects its output. Throws CommandError on failure. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = error.code === "ENOENT" ? `"${command}" is not installed or not on PATH` : error.message;
      reject(new CommandError(command, args, null, null, "", "", hint));
    });
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        exitCode,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      };
      if (exitCode === 0 || options.allowFailure) resolve(result);
      else reject(new CommandError(command, args, exitCode, signal, result.stdout, result.stderr, options.hint));
    });
    if (options.input !== undefined && child.stdin) {
      // A command that exits before reading all input (EPIPE) reports its own error via exit code.
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.input);
    }
  });
}

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

/**
 * Starts a long-running command inside a namespace, detached (it outlives this process),
 * output appended to `logFile`. `ip netns exec` execs the command in place, so the returned
 * PID is the command's own PID.
 */
export function spawnDetachedInNamespace(
  namespace: string,
  command: string,
  args: readonly string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn("ip", ["netns", "exec", namespace, command, ...args], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env,
    });
    if (child.pid === undefined) throw new Error(`cannot start "${command}" in namespace "${namespace}" (spawn failed; is iproute2 installed?)`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
