import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { startError } from "../process/command-errors.js";

/**
 * A long-lived `ip -force -batch -` (or `bridge -force -batch -`) process: weft writes one
 * command per line to its stdin instead of spawning a process per change, which is what makes
 * programming 1000 peers take milliseconds instead of seconds.
 *
 * How results come back (iproute2 6.x):
 *   - `-force` keeps the process going after a failed command; it prints the command's own error
 *     text and then "Command failed -:<line>" on stderr, line numbers counting from the first line
 *     the process ever read.
 *   - Successful commands print nothing. So after each batch we write a sentinel command that
 *     always fails (a `show` of a device that cannot exist); its "Command failed" line tells us
 *     every earlier line has been executed, and stderr's order tells us which failed.
 *   - A line iproute2 cannot parse makes it exit() instead of failing; callers format lines from
 *     validated values (src/kernel/objects.ts) so that should not happen, and if it does the
 *     batch is rejected and the next batch starts a fresh process.
 */

export type BatchTool = "ip" | "bridge";

export interface BatchCommandResult {
  command: string;
  /** The tool's error text for this line; undefined when the command succeeded. */
  error?: string;
}

interface InFlightBatch {
  firstLine: number;
  sentinelLine: number;
  commands: readonly string[];
  errors: Map<number, string>;
  resolve(results: BatchCommandResult[]): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** The sentinel device: a name nothing else uses (15 chars: a longer name would make the parser exit). */
const SENTINEL_DEVICE = "weft-batch-end0";
const SENTINEL: Record<BatchTool, string> = {
  ip: `link show dev ${SENTINEL_DEVICE}`,
  bridge: `fdb show dev ${SENTINEL_DEVICE}`,
};

const FAILED_LINE = /^Command failed -:(\d+)$/;

/**
 * The batch process exited while commands were in flight: which of them ran is unknown.
 * `toolOutput` is what the tool printed on stderr before it stopped (its own words, for callers
 * that recognise a cause such as a stale interface index).
 */
export class BatchProcessStoppedError extends Error {
  constructor(
    readonly tool: BatchTool,
    readonly netns: string | undefined,
    readonly status: string,
    readonly toolOutput: string,
  ) {
    super(
      `\`${tool} -batch\` in ${netns === undefined ? "this namespace" : `namespace "${netns}"`} stopped (${status}) while running commands: ` +
        `${toolOutput || "(no output)"}; a malformed command makes iproute2 exit; the next batch restarts it`,
    );
    this.name = "BatchProcessStoppedError";
  }
}

export class BatchProcess {
  private child: ChildProcessWithoutNullStreams | undefined;
  private linesWritten = 0;
  private inFlight: InFlightBatch[] = [];
  private stderrRest = "";
  private pendingErrorText: string[] = [];
  private lastExit = "";

  constructor(
    readonly tool: BatchTool,
    /** Target namespace (`-n`); undefined = the namespace this process runs in. */
    readonly netns: string | undefined,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Runs the commands in order; resolves with one result per command (never rejects on a failed command). */
  run(commands: readonly string[]): Promise<BatchCommandResult[]> {
    if (commands.length === 0) return Promise.resolve([]);
    for (const command of commands) {
      if (command.includes("\n")) throw new Error(`${this.tool} batch command contains a newline: ${JSON.stringify(command)}`);
    }
    const child = this.ensureProcess();
    return new Promise((resolve, reject) => {
      const firstLine = this.linesWritten + 1;
      this.linesWritten += commands.length + 1;
      const batch: InFlightBatch = {
        firstLine,
        sentinelLine: this.linesWritten,
        commands,
        errors: new Map(),
        resolve,
        reject,
        timer: setTimeout(() => this.fail(`no answer within ${this.timeoutMs} ms`), this.timeoutMs),
      };
      this.inFlight.push(batch);
      child.stdin.write(`${commands.join("\n")}\n${SENTINEL[this.tool]}\n`);
    });
  }

  /** Ends the process (closing stdin lets it exit after the lines it already read). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    child.stdin.end();
    const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
    await exited;
    clearTimeout(killer);
  }

  private get where(): string {
    return this.netns === undefined ? "this namespace" : `namespace "${this.netns}"`;
  }

  private ensureProcess(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const args = [...(this.netns === undefined ? [] : ["-n", this.netns]), "-force", "-batch", "-"];
    const child = spawn(this.tool, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    this.linesWritten = 0;
    this.stderrRest = "";
    this.pendingErrorText = [];
    child.stdout.resume(); // modifying commands print nothing; never let a full pipe block the tool
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => this.onStderr(chunk));
    child.stdin.on("error", () => undefined); // EPIPE after an exit is reported by the exit handler
    child.once("error", (error: NodeJS.ErrnoException) => {
      if (this.child === child) this.child = undefined;
      const cause = startError(this.tool, error);
      this.rejectAll(new Error(`cannot start \`${this.tool} -batch\` in ${this.where}: ${cause.message}`, { cause }));
    });
    child.once("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.lastExit = signal ? `killed by ${signal}` : `exit code ${code}`;
      if (this.inFlight.length > 0) {
        const toolOutput = [...this.pendingErrorText, this.stderrRest].join(" ").trim();
        this.rejectAll(new BatchProcessStoppedError(this.tool, this.netns, this.lastExit, toolOutput));
      }
    });
    return child;
  }

  private onStderr(chunk: string): void {
    const text = this.stderrRest + chunk;
    const lines = text.split("\n");
    this.stderrRest = lines.pop() ?? "";
    for (const line of lines) this.onStderrLine(line);
  }

  private onStderrLine(line: string): void {
    const match = FAILED_LINE.exec(line.trim());
    if (!match) {
      if (line.trim() !== "") this.pendingErrorText.push(line.trim());
      return;
    }
    const lineNumber = Number(match[1]);
    const message = this.pendingErrorText.join("; ") || "failed (no message)";
    this.pendingErrorText = [];
    const batch = this.inFlight.find((candidate) => lineNumber <= candidate.sentinelLine);
    if (!batch) return;
    if (lineNumber === batch.sentinelLine) {
      this.inFlight.splice(this.inFlight.indexOf(batch), 1);
      clearTimeout(batch.timer);
      batch.resolve(
        batch.commands.map((command, index) => {
          const error = batch.errors.get(batch.firstLine + index);
          return error === undefined ? { command } : { command, error };
        }),
      );
    } else {
      batch.errors.set(lineNumber, message);
    }
  }

  private fail(reason: string): void {
    const child = this.child;
    this.child = undefined;
    this.rejectAll(new Error(`\`${this.tool} -batch\` in ${this.where}: ${reason}; the process was restarted`));
    child?.kill("SIGKILL");
  }

  private rejectAll(error: Error): void {
    const batches = this.inFlight;
    this.inFlight = [];
    for (const batch of batches) {
      clearTimeout(batch.timer);
      batch.reject(error);
    }
  }
}
