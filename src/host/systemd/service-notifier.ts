import { loadNativeAddon } from "../../engine/native-addon.js";
import { ConfigurationError } from "../../errors/configuration-error.js";
import { errorMessage } from "../../errors/error-message.js";
import type { Logger } from "../../observe/logger.js";
import { formatNotifyMessage, takeNotifySettings, type NotifySettings } from "./notify-settings.js";
import { socketFdStore, type FdStore } from "./fd-store.js";

/**
 * What the daemon tells its service manager (systemd Type=notify). Every call is a no-op without
 * $NOTIFY_SOCKET; a failed send is logged (once per distinct error) and never stops the daemon.
 */
export interface ServiceNotifier {
  /** READY=1: lease, traffic rules, subnet.env and backend are in place (the /readyz moment). */
  ready(status: string): void;
  /** STATUS=…: one line for `systemctl status` while starting, waiting or re-acquiring. */
  status(status: string): void;
  /** STOPPING=1: a graceful stop has begun. */
  stopping(status: string): void;
  /** Stops the watchdog timer. */
  close(): void;
  /** The unit's fd store (FDSTORE=1); undefined without $NOTIFY_SOCKET. */
  readonly fdStore?: FdStore;
}

export const NO_SERVICE_NOTIFIER: ServiceNotifier = { ready() {}, status() {}, stopping() {}, close() {} };

type Send = (socket: string, message: string, fds?: readonly number[]) => void;

/**
 * The notifier systemd's environment asks for: reads and removes NOTIFY_SOCKET, WATCHDOG_USEC and
 * WATCHDOG_PID from `env`, loads the native addon (which does the sendto; Node has no unix
 * datagram sockets) only then, and starts WATCHDOG=1 every WATCHDOG_USEC/2. A notify socket
 * without a loadable addon is a ConfigurationError: systemd would wait for READY=1 forever.
 */
export function serviceNotifierFromEnv(env: NodeJS.ProcessEnv, logger: Logger, send?: Send): ServiceNotifier {
  const settings = takeNotifySettings(env, process.pid);
  if (!settings) return NO_SERVICE_NOTIFIER;
  for (const reason of settings.ignored) logger.warn({ notifySocket: settings.socket }, `systemd watchdog off: ${reason}`);
  return new SocketNotifier(settings, logger, send ?? nativeSend());
}

function nativeSend(): Send {
  try {
    const addon = loadNativeAddon();
    return (socket, message, fds) => addon.notify(socket, message, fds);
  } catch (error) {
    throw new ConfigurationError(
      `NOTIFY_SOCKET is set (systemd Type=notify), but sd_notify needs weft's native addon: ${errorMessage(error)}; ` +
        "or run weft with Type=simple and /readyz for readiness",
      { cause: error },
    );
  }
}

class SocketNotifier implements ServiceNotifier {
  private readonly watchdog: NodeJS.Timeout | undefined;
  readonly fdStore: FdStore;
  private lastFailure = "";

  constructor(
    private readonly settings: NotifySettings,
    private readonly logger: Logger,
    private readonly sendTo: Send,
  ) {
    this.fdStore = socketFdStore(settings.socket, sendTo);
    const every = settings.watchdogIntervalMs;
    if (every !== undefined) {
      // The event loop running this timer is what the watchdog proves alive; unref: it alone
      // does not keep a stopping process up.
      this.watchdog = setInterval(() => this.send({ WATCHDOG: "1" }), every);
      this.watchdog.unref();
      // systemd arms the watchdog when it starts the process, not at READY=1: the first ping goes
      // now, so loading the program (seconds on a slow or emulated machine) is all it must cover.
      this.send({ WATCHDOG: "1" });
      logger.info({ notifySocket: settings.socket, intervalMs: every }, "systemd watchdog on");
    }
  }

  ready(status: string): void {
    this.send({ READY: "1", STATUS: status });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  stopping(status: string): void {
    this.send({ STOPPING: "1", STATUS: status });
  }

  close(): void {
    clearInterval(this.watchdog);
  }

  private send(fields: Record<string, string>): void {
    try {
      this.sendTo(this.settings.socket, formatNotifyMessage(fields));
      this.lastFailure = "";
    } catch (error) {
      const failure = errorMessage(error);
      if (failure !== this.lastFailure) this.logger.warn({ err: error, notifySocket: this.settings.socket }, "cannot notify systemd");
      this.lastFailure = failure;
    }
  }
}
