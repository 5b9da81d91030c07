import type { Lab } from "../../src/lab/lab.js";
import { inHostRunDir } from "../../src/lab/lab-daemon.js";
import { waitUntil } from "../../src/lab/readiness.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";

/**
 * Debian's wireguard-go started by hand on a lab host, as an operator (or flanneld's docs) would
 * run it: `wireguard-go -f <device>` in the host's namespace, with the host's own /run/wireguard
 * (the one `lab.host(h).exec("wg", …)` and the host's daemon use). Returns its PID once the
 * device answers wg; stop it with terminatePids.
 */
export async function startWireguardGoOnLabHost(lab: Lab, host: string, device: string, logFile: string): Promise<number> {
  const labHost = lab.host(host);
  const [program, args] = await inHostRunDir(labHost.state, "wireguard-go", ["-f", device]);
  const pid = spawnDetachedInNamespace(labHost.namespace, program, args, logFile, { ...process.env, LOG_LEVEL: "error" });
  await waitUntil(`wireguard-go serving ${device} on ${host}`, async () => (await labHost.exec("wg", ["show", device], { allowFailure: true })).exitCode === 0, {
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  return pid;
}
