import { fstatSync } from "node:fs";
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** stderr: stdout stays free for command output. */
const LOG_FD = 2;

/**
 * JSON logs on stderr, one object per line, written synchronously (nothing is lost when the
 * process exits right after a line). Under systemd with stderr on the journal each line starts
 * with its syslog priority (see journalPriorityPrefix), so `journalctl -p warning -u weft` works.
 * Errors go in the `err` field (docs/host-integration.md "Log fields").
 */
export function createLogger(options: { level?: LevelWithSilent; name?: string; fd?: number } = {}): Logger {
  const fd = options.fd ?? LOG_FD;
  const level = options.level ?? (process.env.WEFT_LOG_LEVEL as LevelWithSilent | undefined) ?? "info";
  const destination = pino.destination({ fd, sync: true });
  return pino(
    {
      name: options.name ?? "weft",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: serializeError(level === "debug" || level === "trace") },
    },
    isJournalStream(fd, process.env.JOURNAL_STREAM) ? new JournalPriorityDestination(destination) : destination,
  );
}

/** For tests and library use where nothing should be printed. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/**
 * The `<N>` prefix journald reads as the line's syslog priority (SyslogLevelPrefix=, on by
 * default): 3 err for pino's error and fatal, 4 warning, 6 info, 7 debug for debug and trace.
 */
export function journalPriorityPrefix(level: number): string {
  if (level >= 50) return "<3>";
  if (level >= 40) return "<4>";
  if (level >= 30) return "<6>";
  return "<7>";
}

/**
 * True when `fd` is the stream systemd connected to the journal: $JOURNAL_STREAM is its
 * "device:inode" (systemd.exec(5)). Comparing with fstat keeps a prefix off output that was
 * redirected elsewhere (a shell started from a unit, `weft … 2>file`), where it would be noise.
 */
export function isJournalStream(fd: number, journalStream: string | undefined): boolean {
  const match = /^(\d+):(\d+)$/.exec(journalStream ?? "");
  if (!match) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(match[1] as string) && stat.ino === BigInt(match[2] as string);
  } catch {
    return false;
  }
}

/**
 * Puts the journal priority in front of every line. pino hands a destination that asks for
 * metadata (pino.symbols.needsMetadataGsym) the numeric level of the line it writes next, so no
 * line is parsed again; writes stay synchronous.
 */
class JournalPriorityDestination implements DestinationStream {
  readonly [pino.symbols.needsMetadataGsym] = true;
  /** Set by pino before each write(). */
  lastLevel = 30;

  constructor(private readonly inner: pino.DestinationStream & { flushSync?: () => void }) {}

  write(line: string): void {
    this.inner.write(journalPriorityPrefix(this.lastLevel) + line);
  }

  flushSync(): void {
    this.inner.flushSync?.();
  }
}

interface SerializedError {
  type: string;
  message: string;
  code?: string | number;
  cause?: string;
  stack?: string;
}

/** `err` as type, message, code and the cause's message; the stack only at debug/trace (it is for developers, and long). */
function serializeError(withStack: boolean): (error: unknown) => SerializedError | unknown {
  return (error) => {
    if (!(error instanceof Error)) return error;
    const result: SerializedError = { type: error.name, message: error.message };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" || typeof code === "number") result.code = code;
    if (error.cause instanceof Error && !error.message.includes(error.cause.message)) result.cause = error.cause.message;
    if (withStack && error.stack) result.stack = error.stack;
    return result;
  };
}
