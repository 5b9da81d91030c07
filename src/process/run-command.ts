import { spawn } from "node:child_process";
import { CommandFailedError, CommandMissingError, CommandTimedOutError, startError, type CommandMissingOptions } from "./command-errors.js";

/**
 * The one way weft runs a command to completion (`ip -j`, `nft -f -`, `ethtool`, `etcdctl`, the
 * lab's `ping`). Long-lived processes are elsewhere: `ip -batch` in kernel/batch-process.ts,
 * etcd in lab/etcd-server.ts, detached daemons in ./detached.ts.
 *
 * Contract:
 *   - `netns` runs the program inside that network namespace through `ip netns exec`, which
 *     execs it in place (the child's PID is the program's). Commands that take `-n <ns>`
 *     themselves (`ip`, `bridge`) may pass it in `args` instead and leave `netns` undefined.
 *   - A missing program rejects with CommandMissingError, always (also with `allowFailure`):
 *     the command never ran, so there is no result. Through `ip netns exec` the missing program
 *     is recognised from its "exec of … failed" report.
 *   - A non-zero exit, or death by a signal, rejects with CommandFailedError (exit code, signal,
 *     stdout, stderr); with `allowFailure` it resolves with the result instead.
 *   - After `timeoutMs` (default 30 s) the command is killed with SIGKILL and the call rejects
 *     with CommandTimedOutError; with `allowFailure` it resolves with `timedOut: true`.
 *   - stdout and stderr are collected whole, as UTF-8, up to `maxOutputBytes` each (default
 *     64 MiB); a command that prints more is killed and the call rejects with CommandFailedError
 *     (with or without `allowFailure`: a cut result would be wrong).
 *   - `input` is written to stdin, which is then closed; without it stdin is /dev/null. A command
 *     that exits before reading all input is judged by its exit status, not by the broken pipe.
 */
export interface CommandOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Written to the command's stdin (e.g. an `nft -f -` or `ip -batch -` script). */
  input?: string;
  /** Kill the command after this many milliseconds; default 30 s. */
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting when the command exits non-zero, is killed or times out. */
  allowFailure?: boolean;
  /** Appended to the failure message (what to check, or what the command was for). */
  hint?: string;
  /** Why weft needs the program, for the CommandMissingError message. */
  purpose?: CommandMissingOptions["purpose"];
  /** Environment of the command; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Limit for stdout and for stderr, each, in bytes; default 64 MiB. */
  maxOutputBytes?: number;
}

export interface CommandResult {
  /** 0 on success; null when a signal ended the command. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The command was killed because it ran past `timeoutMs` (only seen with `allowFailure`). */
  timedOut: boolean;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** The argv that runs `program args` in `netns` (or here, when netns is undefined). */
export function commandLineIn(netns: string | undefined, program: string, args: readonly string[]): [string, string[]] {
  return netns === undefined ? [program, [...args]] : ["ip", ["netns", "exec", netns, program, ...args]];
}

/** `ip netns exec` reports a program it cannot exec on stderr, with a non-zero exit. */
function missingInNamespace(program: string, stderr: string): boolean {
  return stderr.startsWith(`exec of "${program}" failed: No such file or directory`);
}

/** Runs a command to completion and collects its output; see CommandOptions for the contract. */
export function runCommand(program: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const [file, argv] = commandLineIn(options.netns, program, args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    const stdout = new OutputCollector(maxOutputBytes);
    const stderr = new OutputCollector(maxOutputBytes);
    let timedOut = false;
    const killOnOverflow = () => {
      if (stdout.overflowed || stderr.overflowed) child.kill("SIGKILL");
    };
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout.add(chunk);
      killOnOverflow();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr.add(chunk);
      killOnOverflow();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // In a namespace, ENOENT here means `ip` itself is missing, and the purpose is not ip's.
      reject(startError(file, error, file === program ? options : {}));
    });
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      const result: CommandResult = { exitCode, signal, stdout: stdout.text(), stderr: stderr.text(), timedOut };
      const failure = {
        program,
        args,
        netns: options.netns,
        exitCode,
        signal,
        stdout: result.stdout,
        stderr: result.stderr,
        ...(options.hint === undefined ? {} : { hint: options.hint }),
      };
      if (exitCode !== 0 && options.netns !== undefined && missingInNamespace(program, result.stderr)) {
        reject(new CommandMissingError(program, options));
      } else if (stdout.overflowed || stderr.overflowed) {
        reject(new CommandFailedError({ ...failure, hint: `printed more than ${maxOutputBytes} bytes, the runner's limit; killed` }));
      } else if (exitCode === 0 || options.allowFailure) {
        resolve(result);
      } else if (timedOut) {
        reject(new CommandTimedOutError(failure, timeoutMs));
      } else {
        reject(new CommandFailedError(failure));
      }
    });
    if (options.input !== undefined && child.stdin) {
      // EPIPE when the command exits before reading all input: its exit status says what happened.
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.input);
    }
  });
}

/** Collects a stream up to a limit; beyond it, remembers only that it overflowed. */
class OutputCollector {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  overflowed = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    if (this.overflowed) return;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) this.overflowed = true;
    else this.chunks.push(chunk);
  }

  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

export interface AttachedCommandOptions {
  netns?: string;
}

/**
 * Runs a command on this process's own stdin, stdout and stderr (an interactive `weft lab exec`
 * shell) and resolves with how it ended; there is no timeout and no output to collect. A
 * missing program rejects with CommandMissingError; any exit status resolves.
 */
export function runAttached(
  program: string,
  args: readonly string[],
  options: AttachedCommandOptions = {},
): Promise<{ exitCode: number | null; signal: NodeJS.Signals | null }> {
  const [file, argv] = commandLineIn(options.netns, program, args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: "inherit" });
    child.once("error", (error: NodeJS.ErrnoException) => reject(startError(file, error)));
    child.once("exit", (exitCode, signal) => resolve({ exitCode, signal }));
  });
}
