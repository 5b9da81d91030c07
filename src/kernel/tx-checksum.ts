import { execFile } from "node:child_process";

/**
 * The tx checksum offload of a device, through ethtool. Some kernels and NICs (and paths through
 * NAT or VMware NSX) corrupt the UDP checksum of vxlan packets whose inner checksum is offloaded:
 * flannel issues #1279, #1282, #1929. The known cure is `ethtool -K flannel.1
 * tx-checksum-ip-generic off`; weft applies it when the config asks, and keeps it applied.
 */
const FEATURE = "tx-checksum-ip-generic";

function ethtool(netns: string | undefined, args: readonly string[]): Promise<string> {
  const [command, fullArgs] = netns === undefined ? ["ethtool", args] : ["ip", ["netns", "exec", netns, "ethtool", ...args]];
  return new Promise((resolve, reject) => {
    execFile(command, fullArgs, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new Error(`"${command}" is not installed: Backend.TxChecksumOffload=false needs ethtool (apt-get install ethtool)`));
      } else if (error) {
        reject(new Error(`ethtool ${args.join(" ")}: ${stderr.trim() || error.message}`));
      } else {
        resolve(stdout);
      }
    });
  });
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
