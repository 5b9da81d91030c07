import { subnetFamily, tryCanonicalIp, type IpFamily, type IpSubnet } from "../net/ip-subnet.js";
import { normalizeMac } from "../net/mac.js";
import type { BatchTool } from "./batch-process.js";

/**
 * The kernel objects weft programs for its peers, as plain values, and the iproute2 lines that
 * add or remove them. Every value is validated before it becomes a line: an `ip -batch` process
 * exits on a line it cannot parse, so a bad value must fail here, naming the value.
 * Addresses are text in canonical form (dotted quad, RFC 5952), of either family: iproute2
 * takes the family from the address, so one line format serves `flannel.N` and `flannel-v6.N`.
 */

export interface RouteObject {
  kind: "route";
  destination: IpSubnet;
  /** Same family as the destination. */
  gateway?: string;
  device: string;
  /** The gateway is not on a connected network (vxlan: the peer's flannel.N address). */
  onlink: boolean;
}

export interface NeighbourObject {
  kind: "neigh";
  address: string;
  mac: string;
  device: string;
}

export interface FdbObject {
  kind: "fdb";
  mac: string;
  device: string;
  /** The underlay address frames for `mac` are sent to. */
  destination: string;
}

export type KernelObject = RouteObject | NeighbourObject | FdbObject;

export interface BatchLine {
  tool: BatchTool;
  line: string;
}

const DEVICE = /^[A-Za-z0-9_.@-]{1,15}$/;

export function assertDeviceName(name: string, what = "interface"): void {
  if (!DEVICE.test(name)) {
    throw new Error(`${what}: "${name}" is not a usable interface name (1..15 of letters, digits, "_", ".", "-", "@")`);
  }
}

/** A canonical address of either family; throws naming `what` otherwise. */
export function canonicalIp(text: string, what: string, family?: IpFamily): string {
  const parsed = tryCanonicalIp(text);
  if (parsed === undefined || (family !== undefined && parsed.family !== family)) {
    throw new Error(`${what}: "${text}" is not an ${family === 6 ? "IPv6" : family === 4 ? "IPv4" : "IP"} address`);
  }
  return parsed.text;
}

/** The address family an object belongs to (a route's destination, a neighbour's address, an FDB entry's underlay). */
export function objectFamily(object: KernelObject): IpFamily {
  switch (object.kind) {
    case "route":
      return subnetFamily(object.destination);
    case "neigh":
      return object.address.includes(":") ? 6 : 4;
    case "fdb":
      return object.destination.includes(":") ? 6 : 4;
  }
}

/** What identifies an object in the kernel: two objects with one key cannot coexist. */
export function objectKey(object: KernelObject): string {
  switch (object.kind) {
    case "route":
      return `route ${object.destination}`;
    case "neigh":
      return `neigh ${object.address} dev ${object.device}`;
    case "fdb":
      return `fdb ${object.mac} dev ${object.device}`;
  }
}

/** One line, as `ip`/`bridge` would show it; used in logs and doctor output. */
export function describeObject(object: KernelObject): string {
  switch (object.kind) {
    case "route":
      return `route ${object.destination}${object.gateway ? ` via ${object.gateway}` : ""} dev ${object.device}${object.onlink ? " onlink" : ""}`;
    case "neigh":
      return `neigh ${object.address} lladdr ${object.mac} dev ${object.device} permanent`;
    case "fdb":
      return `fdb ${object.mac} dev ${object.device} dst ${object.destination} self permanent`;
  }
}

export function sameObject(a: KernelObject, b: KernelObject): boolean {
  return describeObject(a) === describeObject(b);
}

function validate(object: KernelObject): void {
  assertDeviceName(object.device, `${object.kind} device`);
  switch (object.kind) {
    case "route":
      if (object.gateway !== undefined) canonicalIp(object.gateway, `route ${object.destination} gateway`, subnetFamily(object.destination));
      return;
    case "neigh":
      canonicalIp(object.address, "neighbour address");
      normalizeMac(object.mac, `neighbour ${object.address} MAC`);
      return;
    case "fdb":
      normalizeMac(object.mac, "FDB MAC");
      canonicalIp(object.destination, `FDB ${object.mac} destination`);
      return;
  }
}

/** The line that creates the object or replaces one with the same key. */
export function addLine(object: KernelObject): BatchLine {
  validate(object);
  switch (object.kind) {
    case "route": {
      const via = object.gateway ? ` via ${object.gateway}` : "";
      return { tool: "ip", line: `route replace ${object.destination}${via} dev ${object.device}${object.onlink ? " onlink" : ""}` };
    }
    case "neigh":
      return { tool: "ip", line: `neigh replace ${object.address} lladdr ${object.mac} dev ${object.device} nud permanent` };
    case "fdb":
      return { tool: "bridge", line: `fdb replace ${object.mac} dev ${object.device} dst ${object.destination} self permanent` };
  }
}

/** The line that deletes exactly this object. */
export function removeLine(object: KernelObject): BatchLine {
  validate(object);
  switch (object.kind) {
    case "route": {
      const via = object.gateway ? ` via ${object.gateway}` : "";
      return { tool: "ip", line: `route del ${object.destination}${via} dev ${object.device}` };
    }
    case "neigh":
      return { tool: "ip", line: `neigh del ${object.address} dev ${object.device}` };
    case "fdb":
      return { tool: "bridge", line: `fdb del ${object.mac} dev ${object.device} dst ${object.destination} self` };
  }
}

/** Errors that mean a removal found nothing to remove: the desired end state already holds. */
export function isAlreadyGone(error: string): boolean {
  return /No such process|No such file or directory|Cannot find device|does not exist/i.test(error);
}
