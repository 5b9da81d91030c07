import { isJsonObject, readField } from "../codec/json-fields.js";
import { tryParseIpv4 } from "../net/ipv4.js";
import { tryParseIpv6 } from "../net/ipv6.js";
import type { LeaseAttrs } from "./types.js";

/**
 * The lease value JSON, byte-compatible with flanneld (flannel-compat §1.4): PublicIP always,
 * PublicIPv6 as null when unset, then BackendType/BackendData/BackendV6Data only when present.
 *   {"PublicIP":"192.168.77.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:96:90:47:79:a6"}}
 * A dual-stack host's (its subnets are in the key, 10.66.52.0-24&fd66:0:0:6::-64):
 *   {"PublicIP":"192.168.77.1","PublicIPv6":"fd77::11","BackendType":"vxlan","BackendData":{…},"BackendV6Data":{"VNI":1,"VtepMAC":"…"}}
 */
export function formatLeaseValue(attrs: LeaseAttrs): string {
  const value: Record<string, unknown> = { PublicIP: attrs.publicIP, PublicIPv6: attrs.publicIPv6 };
  if (attrs.backendType) value.BackendType = attrs.backendType;
  if (!isEmpty(attrs.backendData)) value.BackendData = attrs.backendData;
  if (!isEmpty(attrs.backendV6Data)) value.BackendV6Data = attrs.backendV6Data;
  return JSON.stringify(value);
}

/** Parses a lease value; the error says what is wrong (the caller adds the key). */
export function parseLeaseValue(text: string): LeaseAttrs {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`value is not JSON: ${abbreviate(text)}`);
  }
  if (!isJsonObject(raw)) throw new Error(`value is not a JSON object: ${abbreviate(text)}`);
  const publicIP = readField(raw, "PublicIP");
  if (typeof publicIP !== "string" || tryParseIpv4(publicIP) === undefined) {
    throw new Error(`PublicIP ${JSON.stringify(publicIP)} is not an IPv4 address`);
  }
  const publicIPv6 = readField(raw, "PublicIPv6");
  if (publicIPv6 !== undefined && publicIPv6 !== null && typeof publicIPv6 !== "string") {
    throw new Error(`PublicIPv6 ${JSON.stringify(publicIPv6)} is not a string or null`);
  }
  // flanneld's IP6 unmarshaller refuses what net.ParseIP refuses; weft also refuses an IPv4 text there,
  // which no flanneld writes and no IPv6 underlay could send to.
  if (typeof publicIPv6 === "string" && publicIPv6 !== "" && tryParseIpv6(publicIPv6) === undefined) {
    throw new Error(`PublicIPv6 ${JSON.stringify(publicIPv6)} is not an IPv6 address`);
  }
  const backendType = readField(raw, "BackendType");
  if (backendType !== undefined && backendType !== null && typeof backendType !== "string") {
    throw new Error(`BackendType ${JSON.stringify(backendType)} is not a string`);
  }
  const attrs: LeaseAttrs = { publicIP, publicIPv6: typeof publicIPv6 === "string" && publicIPv6 !== "" ? publicIPv6 : null };
  if (typeof backendType === "string" && backendType !== "") attrs.backendType = backendType;
  const backendData = readField(raw, "BackendData");
  if (!isEmpty(backendData)) attrs.backendData = backendData;
  const backendV6Data = readField(raw, "BackendV6Data");
  if (!isEmpty(backendV6Data)) attrs.backendV6Data = backendV6Data;
  return attrs;
}

/** True when two leases advertise the same thing (used to tell "changed" from a mere renewal). */
export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return formatLeaseValue(a) === formatLeaseValue(b);
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || (isJsonObject(value) && Object.keys(value).length === 0);
}

function abbreviate(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
