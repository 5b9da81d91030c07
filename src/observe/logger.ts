import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** JSON logs on stderr (stdout stays free for command output), one object per line. */
export function createLogger(options: { level?: LevelWithSilent; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? "weft",
      level: options.level ?? (process.env.WEFT_LOG_LEVEL as LevelWithSilent | undefined) ?? "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** For tests and library use where nothing should be printed. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
