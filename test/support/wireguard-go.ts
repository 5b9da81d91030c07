import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../../src/errors/error-message.js";
import type { Lab } from "../../src/lab/lab.js";
import { execInNamespace, ipBatch } from "../../src/lab/netns.js";
import { WireguardDevice } from "../../src/kernel/wireguard-device.js";
import { startWireguardGo } from "../../src/kernel/wireguard-go.js";
import { terminatePids } from "../../src/process/pids.js";
import { inHostRunDir } from "../../src/lab/lab-daemon.js";
import { waitUntil } from "../../src/lab/readiness.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { leases } from "./lab-etcd.js";

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

/**
 * wireguard-go in a test namespace (two-hosts.ts), started as weft's device backend starts it
 * (src/kernel/wireguard-go.ts) and configured with wg(8) the way flanneld's wireguard backend
 * configures its device: key and port, its own subnet address as /32, a link route for the whole
 * Network; peers are the caller's (`wg set … peer`).
 */
export interface FlannelStyleWireguardGo {
  namespace: string;
  device: string;
  /** Directory for its key files, PID file and log. */
  dir: string;
  listenPort: number;
  /** The key file (in dir) it starts with. */
  keyFile: string;
  address: string;
  network: string;
  mtu: number;
}

export interface RunningWireguardGo {
  device: string;
  wg(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

/** A key file `name` in `dir` from `wg genkey` (run in `namespace`); returns its public key. */
export async function newWireguardGoKey(namespace: string, dir: string, name: string): Promise<string> {
  const privateKey = (await execInNamespace(namespace, "wg", ["genkey"])).stdout.trim();
  await writeFile(join(dir, name), `${privateKey}\n`, { mode: 0o400 });
  return (await execInNamespace(namespace, "wg", ["pubkey"], { input: `${privateKey}\n` })).stdout.trim();
}

/**
 * startWireguardGo, once more if wireguard-go exited with "Failed to listen on uapi socket: no
 * such file or directory": seen twice in full runs (1 start in several thousand), cause not
 * found — /run/wireguard was not re-created meanwhile, and no test deletes sockets in it. This
 * stand-in for flanneld's side has no reconcile to start it again, as weft's daemon does.
 */
export async function startWireguardGoRetryingUapi(device: WireguardDevice, dir: string): Promise<number> {
  try {
    return await startWireguardGo(device, dir);
  } catch (error) {
    if (!/Failed to listen on uapi socket: no such file or directory/.test(errorMessage(error))) throw error;
    console.warn(`wireguard-go for ${device.name} could not listen on its UAPI socket; starting it once more: ${errorMessage(error)}`);
    return startWireguardGo(device, dir);
  }
}

export async function startFlannelStyleWireguardGo(setup: FlannelStyleWireguardGo): Promise<RunningWireguardGo> {
  const pid = await startWireguardGoRetryingUapi(new WireguardDevice(setup.device, setup.namespace), setup.dir);
  const wg = async (args: readonly string[]) => (await execInNamespace(setup.namespace, "wg", args)).stdout;
  try {
    await wg(["set", setup.device, "private-key", join(setup.dir, setup.keyFile), "listen-port", String(setup.listenPort)]);
    await ipBatch(setup.namespace, [
      `address add ${setup.address}/32 dev ${setup.device}`,
      `link set ${setup.device} mtu ${setup.mtu} up`,
      `route add ${setup.network} dev ${setup.device} scope link`,
    ]);
  } catch (error) {
    await terminatePids([pid], 2000);
    throw error;
  }
  return { device: setup.device, wg, stop: () => terminatePids([pid], 2000) };
}

/** A wireguard lease's value as flanneld and weft write it (the fields the tests read). */
export interface WireguardLeaseValue {
  PublicIP: string;
  BackendType: string;
  BackendData: { PublicKey: string; Port: number };
}

/** The lab's leases by subnet ("10.66.3.0/24"), read with etcdctl. */
export async function wireguardLeases(lab: Lab): Promise<Map<string, WireguardLeaseValue>> {
  const result = new Map<string, WireguardLeaseValue>();
  for (const { key, value } of await leases<WireguardLeaseValue>(lab)) result.set(key.split("/").pop()!.replace("-", "/"), value);
  return result;
}
