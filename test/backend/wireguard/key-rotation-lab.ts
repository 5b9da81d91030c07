/**
 * What the device path's key rotation lab tests share (wireguard-go-key-rotation*.test.ts): the
 * operator's file replacement, reading a lab host's lease, device, PIDs and log, and the loss
 * bounds, measured in docs/wireguard.md ("Key rotation").
 */
import { chmod, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Lab } from "../../../src/lab/lab.js";
import { execInNamespace } from "../../../src/lab/netns.js";
import type { PingStreamResult } from "../../../src/lab/ping-stream.js";
import { parseWgDump, type WgDump } from "../../../src/kernel/wireguard-device.js";
import { leases as leasesInEtcd } from "../../support/lab-etcd.js";

export const V4 = "flannel-wg";
export const V6 = "flannel-wg-v6";
/** The daemon looks at the key file every 2 s (key-watch.ts). */
export const KEY_WATCH_MS = 2000;
/**
 * Echoes one 10 ms stream may lose across a rotation. The device drops its sessions for sending
 * when it takes the key; the first packets wait for one handshake (wireguard-go stages them), so
 * the stream stalls but loses little. A handshake that misses costs REKEY_TIMEOUT (5 s, ~500
 * echoes), or the second-later re-initiation (~100). Measured: docs/wireguard.md, key rotation.
 */
export const MAX_LOST_PER_STREAM = 20;
/** The stall is the peers' 500 ms settling of a lease change (lease/watch.ts) and one handshake; REKEY_TIMEOUT is 5 s. */
export const MAX_GAP_MS = 2000;

interface Half {
  PublicKey: string;
  Port: number;
}
export interface LeaseValue {
  PublicIP: string;
  BackendData: Half;
  BackendV6Data?: Half;
}

/** What an operator does: the new file beside the old one, mode set, renamed over it. */
export async function replaceKeyFile(path: string, content: string, mode: number): Promise<void> {
  const next = `${path}.new`;
  await rm(next, { force: true });
  await writeFile(next, content, { mode });
  await chmod(next, mode);
  await rename(next, path);
}

/** Helpers over one lab. */
export function labTools(lab: () => Lab) {
  const host = (name: string) => lab().host(name);
  return {
    keyFile: (name: string) => join(host(name).state.stateDir, "wgkey"),
    leaseOf: async (name: string): Promise<LeaseValue> => {
      const found = (await leasesInEtcd<LeaseValue>(lab())).find((lease) => lease.value.PublicIP === host(name).underlayAddress);
      if (!found) throw new Error(`no lease of ${name} in etcd`);
      return found.value;
    },
    dump: async (name: string, device = V4): Promise<WgDump> => parseWgDump((await host(name).exec("wg", ["show", device, "dump"])).stdout),
    wireguardGoPid: async (name: string, device = V4): Promise<number> =>
      Number((await readFile(join(host(name).state.stateDir, `wireguard-go.${device}.pid`), "utf8")).trim()),
    /** The daemon's log since it was started. */
    log: async (name: string): Promise<string> => (await readFile(host(name).state.logFile, "utf8")).slice(host(name).state.daemonLogOffset ?? 0),
    daemonPid: (name: string): number => {
      const pid = host(name).state.daemonPid;
      if (pid === undefined) throw new Error(`${name} has no daemon`);
      return pid;
    },
    containerAddress: (name: string): string => {
      const address = lab().container(name).address;
      if (!address) throw new Error(`${name} has no address`);
      return address;
    },
  };
}

/** Each peer as the device holds it, without its handshake and counters (what a rotation must leave alone). */
export const peerSettings = (dump: WgDump) =>
  dump.peers.map(({ publicKey, endpoint, allowedIps, persistentKeepaliveSeconds }) => ({ publicKey, endpoint, allowedIps: [...allowedIps].sort(), persistentKeepaliveSeconds }))
    .sort((a, b) => a.publicKey.localeCompare(b.publicKey));

export function describeStream(what: string, result: PingStreamResult): string {
  return `${what}: ${result.sent} sent, ${result.received} received, ${result.lost} lost, longest gap ${result.longestGapMs} ms`;
}

/** `count` pings every 10 ms from `namespace` (any family), waited for; the summary line's counts. */
export async function pingCount(namespace: string, target: string, count: number): Promise<{ sent: number; received: number }> {
  const result = await execInNamespace(namespace, "ping", ["-n", "-q", "-i", "0.01", "-W", "1", "-c", String(count), target], { allowFailure: true, timeoutMs: count * 10 + 30_000 });
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(result.stdout);
  if (!summary) throw new Error(`ping ${target} from ${namespace} printed no summary: ${result.stdout}${result.stderr}`);
  return { sent: Number(summary[1]), received: Number(summary[2]) };
}
