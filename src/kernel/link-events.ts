import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "pino";

/**
 * Kernel link events as a trigger only (`ip -o monitor link`, one line per event): a device
 * deleted from under the daemon (flannel.1, the TUN) makes the caller reconcile at once instead
 * of at the next periodic pass. The periodic reconcile stays the backstop: a missed event, or
 * a monitor that cannot start, costs at most one reconcile interval.
 */
export class LinkEvents {
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onDeleted: (device: string) => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.stopped) return;
    const child = spawn("ip", ["-o", "monitor", "link"], { stdio: ["ignore", "pipe", "ignore"] });
    this.child = child;
    let pending = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const device = deletedDevice(line);
        if (device) this.onDeleted(device);
      }
    });
    child.once("error", (error) => this.logger.warn({ err: error }, "cannot watch link events (ip monitor link); deleted devices come back at the next reconcile"));
    child.once("exit", () => {
      this.child = undefined;
      if (this.stopped) return;
      // Keep the trigger alive; the periodic reconcile covers the time in between.
      this.restartTimer = setTimeout(() => this.start(), 5000);
      this.restartTimer.unref();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.child?.kill("SIGTERM");
  }
}

/** The device a `ip -o monitor link` line says was deleted: "Deleted 7: flannel.1: <BROADCAST,…" → "flannel.1". */
export function deletedDevice(line: string): string | undefined {
  const match = /^Deleted (?:link )?\d+: ([^:@\s]+)(?:@[^:\s]+)?:/.exec(line.trim());
  return match?.[1];
}

/** The names of the devices weft's backends create (flanneld's names, and weft.N of userspace vxlan). */
export function isWeftDevice(name: string): boolean {
  return /^(flannel|weft)([.0-9]|-wg|-v6)/.test(name);
}
