import { readFile, writeFile } from "node:fs/promises";
import { CommandFailedError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * IPv6 router advertisements on the vxlan devices: flannel sets accept_ra to 0 on both
 * (flannel-compat §6), so an RA flooded into the overlay can never add a default route or an
 * address through it. In the daemon's own namespace the /proc/sys file is read and written
 * directly (every reconcile pass reads it: no process per pass); inside another namespace (the
 * tests, the lab's in-process backends) through `sysctl` in that namespace, in its slash form,
 * since the device name (flannel.1, flannel-v6.1) contains a dot.
 */

function key(device: string): string {
  return `net/ipv6/conf/${device}/accept_ra`;
}

/** accept_ra of the device, or undefined when the kernel has no IPv6 for it (ipv6.disable=1). */
export async function acceptRa(device: string, netns?: string): Promise<number | undefined> {
  if (netns === undefined) {
    try {
      return Number((await readFile(`/proc/sys/${key(device)}`, "utf8")).trim());
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new Error(`cannot read /proc/sys/${key(device)}: ${errorMessage(error)}`, { cause: error });
    }
  }
  try {
    const { stdout } = await runCommand("sysctl", ["-n", key(device)], { netns, timeoutMs: 10_000 });
    return Number(stdout.trim());
  } catch (error) {
    if (error instanceof CommandFailedError && /cannot stat|No such file/i.test(error.stderr)) return undefined;
    throw new Error(`cannot read ${key(device)}: ${commandFailureText(error)}`, { cause: error });
  }
}

/** The write failed because /proc/sys is read-only here (systemd's ProtectKernelTunables=, a container). */
export class AcceptRaReadOnlyError extends Error {}

export async function disableAcceptRa(device: string, netns?: string): Promise<void> {
  if (netns === undefined) {
    try {
      await writeFile(`/proc/sys/${key(device)}`, "0\n");
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const message = `cannot set /proc/sys/${key(device)} to 0: ${errorMessage(error)}`;
      if (code === "EROFS" || code === "EACCES" || code === "EPERM") throw new AcceptRaReadOnlyError(message, { cause: error });
      throw new Error(message, { cause: error });
    }
  }
  try {
    await runCommand("sysctl", ["-q", "-w", `${key(device)}=0`], { netns, timeoutMs: 10_000 });
  } catch (error) {
    throw new Error(`cannot set ${key(device)}=0: ${commandFailureText(error)}`, { cause: error });
  }
}
