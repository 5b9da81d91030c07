import type { PeerRoute } from "../engine/engine.js";
import { describeObject, objectFamily, type KernelObject } from "../kernel/objects.js";
import type { IpFamily } from "../net/ip-subnet.js";
import { describeChange, type KernelChange } from "../kernel/plan.js";

/**
 * What a reconcile found and did, as values: the kernel backends' route/neighbour/FDB objects
 * and plan changes (kernel/plan.ts), plus what only a device check or the userspace data path
 * knows. Callers decide on the values (doctor: is this a change to the device itself?); text is
 * made only at the edge, by the describe/format functions below, for logs and `weft doctor`.
 */

/** A userspace backend's state: the TUN device as `ip` shows it, and the peers held by the engine. */
export type TunObject =
  | { kind: "tun-device"; device: string }
  /** `address` as "a.b.c.d/len". */
  | { kind: "tun-address"; address: string; device: string }
  /** `destination` as "a.b.c.d/len". */
  | { kind: "tun-route"; destination: string; device: string }
  | { kind: "engine-peer"; peer: PeerRoute }
  /** A peer of a WireGuard device (kernel, wireguard-go) as wg(8) shows it; `endpoint` "a.b.c.d:port" or "[v6]:port". */
  | { kind: "wireguard-peer"; device: string; publicKey: string; endpoint: string | undefined; allowedIps: readonly string[] };

/** Anything a backend owns and reconciles. */
export type OwnedObject = KernelObject | TunObject;

/** A change to the backend's device itself rather than to a peer's state. */
export type DeviceChange =
  | { action: "create-device"; device: string; vni: number; mac: string }
  | { action: "recreate-device"; device: string; reason: string }
  | { action: "set-mtu"; device: string; mtu: number; was: number }
  | { action: "set-up"; device: string }
  | { action: "disable-tx-checksum"; device: string }
  /** IPv6 router advertisements off on a vxlan device, as flannel sets it. */
  | { action: "disable-accept-ra"; device: string; was: number }
  /** `address` as "a.b.c.d/len" or "fd66:0:0:6::/128". */
  | { action: "add-address"; device: string; address: string }
  | { action: "remove-address"; device: string; address: string };

export type TunChange = { action: "add" | "remove"; object: TunObject };

export type ReconcileChange = KernelChange | TunChange | DeviceChange;

export interface ReconcileReport {
  desired: OwnedObject[];
  actual: OwnedObject[];
  /** What was (or, with dryRun, would be) added, removed or replaced; empty when in sync. */
  changes: ReconcileChange[];
}

/** The same report as lines (logs, `weft doctor` text and --json). */
export interface ReconcileReportText {
  desired: string[];
  actual: string[];
  changes: string[];
}

export const IN_SYNC: ReconcileReport = Object.freeze({ desired: [], actual: [], changes: [] }) as ReconcileReport;

function isTunObject(object: OwnedObject): object is TunObject {
  return object.kind === "tun-device" || object.kind === "tun-address" || object.kind === "tun-route" || object.kind === "engine-peer" || object.kind === "wireguard-peer";
}

/** One line per object: "route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink", "address 10.70.1.0/32 dev wt0". */
export function describeOwnedObject(object: OwnedObject): string {
  if (!isTunObject(object)) return describeObject(object);
  switch (object.kind) {
    case "tun-device":
      return `device ${object.device}`;
    case "tun-address":
      return `address ${object.address} dev ${object.device}`;
    case "tun-route":
      return `route ${object.destination} dev ${object.device}`;
    case "engine-peer": {
      const { subnet, publicIP, vtepMac } = object.peer;
      return `peer ${subnet} via ${publicIP}${vtepMac ? ` mac ${vtepMac}` : ""}`;
    }
    case "wireguard-peer":
      return `peer ${object.publicKey} endpoint ${object.endpoint ?? "(none)"} allowed-ips ${object.allowedIps.join(",") || "(none)"} dev ${object.device}`;
  }
}

function describeDeviceChange(change: DeviceChange): string {
  switch (change.action) {
    case "create-device":
      return `create device ${change.device} (vxlan id ${change.vni}, MAC ${change.mac})`;
    case "recreate-device":
      return `recreate device ${change.device}: ${change.reason}`;
    case "set-mtu":
      return `set ${change.device} mtu ${change.mtu} (was ${change.was})`;
    case "set-up":
      return `set ${change.device} up`;
    case "disable-tx-checksum":
      return `turn tx checksum offload off on ${change.device} (Backend.TxChecksumOffload=false)`;
    case "disable-accept-ra":
      return `set net.ipv6.conf.${change.device}.accept_ra 0 (was ${change.was})`;
    case "add-address":
      return `add address ${change.address} to ${change.device}`;
    case "remove-address":
      return `remove address ${change.address} from ${change.device}`;
  }
}

function isObjectChange(change: ReconcileChange): change is KernelChange | TunChange {
  return change.action === "add" || change.action === "remove" || change.action === "replace";
}

function isKernelChange(change: ReconcileChange): change is KernelChange {
  return isObjectChange(change) && !isTunObject(change.object);
}

/** "add route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink", "create device flannel.1 (…)". */
export function describeReconcileChange(change: ReconcileChange): string {
  if (isKernelChange(change)) return describeChange(change);
  if (isObjectChange(change)) return `${change.action} ${describeOwnedObject(change.object)}`;
  return describeDeviceChange(change);
}

/**
 * Whether the change touches the device itself (creates or re-creates it, or changes its
 * addresses): made with the wrong interface or state dir, such a change cuts the host off.
 */
export function isDeviceChange(change: ReconcileChange): boolean {
  switch (change.action) {
    case "create-device":
    case "recreate-device":
    case "add-address":
    case "remove-address":
      return true;
    case "add":
    case "remove":
      return change.object.kind === "tun-address";
    default:
      return false;
  }
}

export function formatReconcileReport(report: ReconcileReport): ReconcileReportText {
  return {
    desired: report.desired.map(describeOwnedObject),
    actual: report.actual.map(describeOwnedObject),
    changes: report.changes.map(describeReconcileChange),
  };
}

/** The address family an owned object serves: a kernel object's own, a TUN object's address (engine peers: IPv4). */
export function ownedObjectFamily(object: OwnedObject): IpFamily {
  if (!isTunObject(object)) return objectFamily(object);
  switch (object.kind) {
    case "tun-address":
      return object.address.includes(":") ? 6 : 4;
    case "tun-route":
      return object.destination.includes(":") ? 6 : 4;
    default:
      return 4;
  }
}

/** The family a change is for; undefined for a change to a device as a whole (create, MTU, up, offload). */
export function reconcileChangeFamily(change: ReconcileChange): IpFamily | undefined {
  if (isObjectChange(change)) return ownedObjectFamily(change.object);
  if (change.action === "add-address" || change.action === "remove-address") return change.address.includes(":") ? 6 : 4;
  return undefined;
}

export interface FamilyCounts {
  desired: number;
  actual: number;
  changes: number;
}

/**
 * How many objects and changes of the report are IPv4 and IPv6: what `weft doctor` shows per
 * family on a dual-stack network ("IPv6: 6 desired, 6 present, in sync"). Device-level changes
 * count in neither.
 */
export function countByFamily(report: ReconcileReport): Record<"ipv4" | "ipv6", FamilyCounts> {
  const counts = { ipv4: { desired: 0, actual: 0, changes: 0 }, ipv6: { desired: 0, actual: 0, changes: 0 } };
  const slot = (family: IpFamily) => (family === 4 ? counts.ipv4 : counts.ipv6);
  for (const object of report.desired) slot(ownedObjectFamily(object)).desired++;
  for (const object of report.actual) slot(ownedObjectFamily(object)).actual++;
  for (const change of report.changes) {
    const family = reconcileChangeFamily(change);
    if (family !== undefined) slot(family).changes++;
  }
  return counts;
}
