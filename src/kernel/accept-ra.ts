import { CommandFailedError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/**
 * IPv6 router advertisements on the vxlan devices: flannel sets accept_ra to 0 on both
 * (flannel-compat §6), so an RA flooded into the overlay can never add a default route or an
 * address through it. Read and written through sysctl's slash form, since the device name
 * (flannel.1, flannel-v6.1) contains a dot.
 */

function key(device: string): string {
  return `net/ipv6/conf/${device}/accept_ra`;
}

/** accept_ra of the device, or undefined when the kernel has no IPv6 for it (ipv6.disable=1). */
export async function acceptRa(device: string, netns?: string): Promise<number | undefined> {
  try {
    const { stdout } = await runCommand("sysctl", ["-n", key(device)], { netns, timeoutMs: 10_000 });
    return Number(stdout.trim());
  } catch (error) {
    if (error instanceof CommandFailedError && /cannot stat|No such file/i.test(error.stderr)) return undefined;
    throw new Error(`cannot read ${key(device)}: ${commandFailureText(error)}`, { cause: error });
  }
}

export async function disableAcceptRa(device: string, netns?: string): Promise<void> {
  try {
    await runCommand("sysctl", ["-q", "-w", `${key(device)}=0`], { netns, timeoutMs: 10_000 });
  } catch (error) {
    throw new Error(`cannot set ${key(device)}=0: ${commandFailureText(error)}`, { cause: error });
  }
}
