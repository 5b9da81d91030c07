import { CommandFailedError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/**
 * The tx checksum offload of a device, through ethtool. Some kernels and NICs (and paths through
 * NAT or VMware NSX) corrupt the UDP checksum of vxlan packets whose inner checksum is offloaded:
 * flannel issues #1279, #1282, #1929. The known cure is `ethtool -K flannel.1
 * tx-checksum-ip-generic off`; weft applies it when the config asks, and keeps it applied.
 */
const FEATURE = "tx-checksum-ip-generic";

/** ethtool's stdout; a missing ethtool rejects with CommandMissingError saying why weft needs it. */
async function ethtool(netns: string | undefined, args: readonly string[]): Promise<string> {
  try {
    const result = await runCommand("ethtool", args, { netns, timeoutMs: 10_000, purpose: "Backend.TxChecksumOffload=false needs ethtool" });
    return result.stdout;
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    throw new Error(`ethtool ${args.join(" ")}: ${commandFailureText(error)}`, { cause: error });
  }
}

/** True when the device's tx checksum offload is on (ethtool -k). */
export async function txChecksumOffloadOn(device: string, netns?: string): Promise<boolean> {
  const features = await ethtool(netns, ["-k", device]);
  const line = features.split("\n").find((text) => text.trim().startsWith(`${FEATURE}:`));
  if (!line) throw new Error(`ethtool -k ${device} does not list ${FEATURE}`);
  return /:\s*on\b/.test(line);
}

export async function setTxChecksumOffload(device: string, on: boolean, netns?: string): Promise<void> {
  await ethtool(netns, ["-K", device, FEATURE, on ? "on" : "off"]);
}
