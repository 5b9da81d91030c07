import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../../errors/error-message.js";
import { Ipv4Subnet } from "../../net/ipv4.js";
import { Ipv6Subnet } from "../../net/ipv6.js";
import type { EngineOptions, PeerRoute } from "../../engine/engine.js";
import { writeFileAtomic } from "../../host/atomic-file.js";

/**
 * What a userspace data path needs to forward again without etcd (docs/dataplane.md
 * "Restarts"): the options its engine was opened with (the device's resolved name among them)
 * and every peer route, in `<state dir>/datapath.json`. A restarted daemon opens its engine
 * from this before it reads any flag beyond --state-dir or talks to etcd, then reconciles with
 * the real config and lease set. Never holds a secret (wireguard is not handed over).
 */
export const SNAPSHOT_VERSION = 1;

/** The JSON-safe part of EngineOptions a udp or userspace-vxlan engine is opened with. */
export type SnapshotEngineOptions = Omit<EngineOptions, "wireguard" | "adopt" | "paused">;

export interface DataPathSnapshot {
  /** The backend that wrote it ("udp", "vxlan"): another backend's daemon does not resume it. */
  backend: string;
  /** The options as the backend opened the engine (its TunName may be a template such as "flannel%d"). */
  engine: SnapshotEngineOptions;
  /** The device the kernel gave it (flannel0): what a restart re-attaches to. */
  device: string;
  peers: PeerRoute[];
  /**
   * Written by a graceful stop that lengthened the device's queue for the hand-over: the length
   * to put back once the next engine has drained it (absent: the queue was left alone).
   */
  txQueueLength?: number;
}

export function snapshotPath(stateDir: string): string {
  return join(stateDir, "datapath.json");
}

export async function writeSnapshot(stateDir: string, snapshot: DataPathSnapshot): Promise<void> {
  const peers = snapshot.peers.map((peer) => ({
    subnet: peer.subnet.toString(),
    publicIP: peer.publicIP,
    ...(peer.vtepMac !== undefined ? { vtepMac: peer.vtepMac } : {}),
    ...(peer.ipv6 ? { ipv6: { subnet: peer.ipv6.subnet.toString(), publicIPv6: peer.ipv6.publicIPv6, vtepMac: peer.ipv6.vtepMac } } : {}),
  }));
  const text = JSON.stringify(
    {
      version: SNAPSHOT_VERSION, backend: snapshot.backend, device: snapshot.device, engine: snapshot.engine, peers,
      ...(snapshot.txQueueLength !== undefined ? { txQueueLength: snapshot.txQueueLength } : {}),
    },
    null,
    1,
  );
  await writeFileAtomic(snapshotPath(stateDir), `${text}\n`, "data path snapshot (--state-dir)");
}

export async function removeSnapshot(stateDir: string): Promise<void> {
  await rm(snapshotPath(stateDir), { force: true });
}

/**
 * The snapshot in `stateDir`; undefined when there is none. Throws naming the file and the
 * field when it is unusable (the caller then starts the slow way and says why).
 */
export async function readSnapshot(stateDir: string): Promise<DataPathSnapshot | undefined> {
  const path = snapshotPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`data path snapshot ${path}: ${errorMessage(error)}`);
  }
  return parseSnapshot(text, path);
}

export function parseSnapshot(text: string, path: string): DataPathSnapshot {
  const fail = (what: string): never => {
    throw new Error(`data path snapshot ${path}: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return fail(`not JSON (${errorMessage(error)})`);
  }
  const root = object(raw) ?? fail("not a JSON object");
  if (root.version !== SNAPSHOT_VERSION) fail(`version ${JSON.stringify(root.version)}, this weft reads ${SNAPSHOT_VERSION}`);
  const backend = typeof root.backend === "string" ? root.backend : fail('"backend" is not a string');
  const device = typeof root.device === "string" && /^[^\s/%]{1,15}$/.test(root.device) ? root.device : fail('"device" is not a device name');
  const engine = object(root.engine) ?? fail('"engine" is not an object');
  if (engine.mode !== "udp" && engine.mode !== "vxlan") fail(`engine.mode ${JSON.stringify(engine.mode)} is not "udp" or "vxlan"`);
  for (const key of ["tunName", "bindAddress"]) if (typeof engine[key] !== "string") fail(`engine.${key} is not a string`);
  if (typeof engine.mtu !== "number") fail("engine.mtu is not a number");
  if (!Array.isArray(root.peers)) fail('"peers" is not an array');
  const peers = (root.peers as unknown[]).map((entry, index): PeerRoute => {
    const peer = object(entry) ?? fail(`peers[${index}] is not an object`);
    const at = `peers[${index}]`;
    const route: PeerRoute = {
      subnet: subnet4(peer.subnet, `${at}.subnet`, fail),
      publicIP: typeof peer.publicIP === "string" ? peer.publicIP : fail(`${at}.publicIP is not a string`),
    };
    if (peer.vtepMac !== undefined) route.vtepMac = typeof peer.vtepMac === "string" ? peer.vtepMac : fail(`${at}.vtepMac is not a string`);
    if (peer.ipv6 !== undefined) {
      const v6 = object(peer.ipv6) ?? fail(`${at}.ipv6 is not an object`);
      route.ipv6 = {
        subnet: subnet6(v6.subnet, `${at}.ipv6.subnet`, fail),
        publicIPv6: typeof v6.publicIPv6 === "string" ? v6.publicIPv6 : fail(`${at}.ipv6.publicIPv6 is not a string`),
        vtepMac: typeof v6.vtepMac === "string" ? v6.vtepMac : fail(`${at}.ipv6.vtepMac is not a string`),
      };
    }
    return route;
  });
  const snapshot: DataPathSnapshot = { backend, engine: engine as unknown as SnapshotEngineOptions, device, peers };
  if (root.txQueueLength !== undefined) {
    const length = root.txQueueLength;
    snapshot.txQueueLength = typeof length === "number" && Number.isInteger(length) && length >= 1 ? length : fail("txQueueLength is not a positive integer");
  }
  return snapshot;
}

function object(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function subnet4(value: unknown, what: string, fail: (what: string) => never): Ipv4Subnet {
  const parsed = typeof value === "string" ? Ipv4Subnet.tryParse(value) : undefined;
  return parsed ?? fail(`${what} ${JSON.stringify(value)} is not an IPv4 CIDR`);
}

function subnet6(value: unknown, what: string, fail: (what: string) => never): Ipv6Subnet {
  try {
    if (typeof value === "string") return Ipv6Subnet.parse(value, what);
  } catch {
    // reported below with the file's name
  }
  return fail(`${what} ${JSON.stringify(value)} is not an IPv6 CIDR`);
}
