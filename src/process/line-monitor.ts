import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { Backoff } from "../async/backoff.js";
import { commandLineIn } from "./run-command.js";

/** Restarts of a monitor that died: 1 s, doubling to 30 s; reset once it has run this long. */
const RESTART_FIRST_MS = 1000;
const RESTART_MAX_MS = 30_000;
const STABLE_AFTER_MS = 30_000;
/** The end of stderr kept for the log line when the monitor dies. */
const STDERR_KEPT_CHARS = 400;

export interface LineMonitorOptions {
  /** What it watches, for log lines: e.g. "kernel events (ip monitor)". */
  what: string;
  program: string;
  args: readonly string[];
  /** Run inside this network namespace (`ip netns exec`; tests). */
  netns?: string;
  /** Each complete line of stdout, without its newline. */
  onLine: (line: string) => void;
  /**
   * True once the process runs (also after each restart), false when it died or could not
   * start. While false the caller cannot rely on events and polls instead.
   */
  onRunning: (running: boolean) => void;
  logger: Logger;
}

/**
 * A long-lived process whose stdout is a stream of lines (`ip monitor`, `nft monitor`), kept
 * running: when it dies it is restarted with back-off, and the caller hears of each change
 * between running and not. A failure is logged when the monitor goes down, not at every failed
 * restart; stop() kills the child by its ChildProcess, never by name.
 */
export class LineMonitor {
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(RESTART_FIRST_MS, RESTART_MAX_MS);
  /** Whether the last start ended in a failure already logged (so repeated failures are quiet). */
  private down = false;

  constructor(private readonly options: LineMonitorOptions) {}

  /** Whether the monitor process is running now. */
  get running(): boolean {
    return this.child !== undefined && this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The monitor's PID while it runs (tests tell it apart from short-lived children). */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  start(): void {
    if (this.stopped || this.child) return;
    const { what, program, args, netns, logger } = this.options;
    const [command, argv] = commandLineIn(netns, program, args);
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const startedAt = performance.now();
    let pending = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line !== "") this.options.onLine(line);
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEPT_CHARS);
    });
    child.once("spawn", () => {
      if (this.down) logger.info({ what }, `${what}: running again`);
      this.down = false;
      this.options.onRunning(true);
    });
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      this.child = undefined;
      if (this.stopped) return;
      if (performance.now() - startedAt >= STABLE_AFTER_MS) this.backoff.reset();
      const retryInMs = this.backoff.next();
      if (!this.down) {
        logger.warn({ what, command: [program, ...args].join(" "), stderr: stderr.trim() || undefined, retryInMs }, `${what}: ${why}; polling instead until it runs again`);
      }
      this.down = true;
      this.options.onRunning(false);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        this.start();
      }, retryInMs);
      this.restartTimer.unref();
    };
    child.once("error", (error) => end(`cannot run ${program} (${error.message})`));
    child.once("exit", (code, signal) => end(signal ? `${program} was killed (${signal})` : `${program} exited with code ${code}`));
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.child?.kill("SIGTERM");
    this.child = undefined;
  }
}
