import { ConfigurationError } from "../../errors/configuration-error.js";

/**
 * What systemd's environment asks of a Type=notify service (sd_notify(3), sd_watchdog_enabled(3)),
 * read once at start. Pure: the daemon's ServiceNotifier (./service-notifier.ts) does the I/O.
 */
export interface NotifySettings {
  /** $NOTIFY_SOCKET: an absolute path, or "@name" for an abstract socket. */
  socket: string;
  /** WATCHDOG_USEC / 2 in ms: how often to send WATCHDOG=1; undefined when no watchdog is asked for us. */
  watchdogIntervalMs: number | undefined;
  /** Why a watchdog setting was ignored (logged as a warning); empty when there was nothing odd. */
  ignored: string[];
}

/** The variables systemd sets for the main process; none of them is meant for our children. */
const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/**
 * Reads the notification settings and removes the variables from `env` (process.env in the
 * daemon), so `ip`, `nft` and other children never notify in our name. undefined without
 * $NOTIFY_SOCKET: then nothing about the daemon changes.
 */
export function takeNotifySettings(env: NodeJS.ProcessEnv, pid: number): NotifySettings | undefined {
  const socket = env.NOTIFY_SOCKET;
  const usec = env.WATCHDOG_USEC;
  const watchdogPid = env.WATCHDOG_PID;
  for (const name of NOTIFY_VARIABLES) delete env[name];
  if (socket === undefined || socket === "") return undefined;
  if (!/^[/@]./.test(socket)) {
    throw new ConfigurationError(`NOTIFY_SOCKET: "${socket}" is neither an absolute path nor an @abstract socket name`);
  }
  const ignored: string[] = [];
  let watchdogIntervalMs: number | undefined;
  if (usec !== undefined && usec !== "") {
    const micros = /^\d+$/.test(usec) ? Number(usec) : NaN;
    if (!(micros > 0)) ignored.push(`WATCHDOG_USEC="${usec}" is not a positive number of microseconds`);
    else if (watchdogPid !== undefined && watchdogPid !== "" && watchdogPid !== String(pid)) {
      ignored.push(`WATCHDOG_PID=${watchdogPid} is not this process (${pid}): the watchdog is someone else's`);
    } else watchdogIntervalMs = Math.max(1, Math.floor(micros / 2000));
  }
  return { socket, watchdogIntervalMs, ignored };
}

/** The sd_notify message for `fields` (READY=1, STATUS=…): one VAR=value per line; a newline in a value would end it. */
export function formatNotifyMessage(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields)
    .map(([name, value]) => `${name}=${value.replace(/[\r\n]+/g, " ")}`)
    .join("\n");
}
