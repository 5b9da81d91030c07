import { isJsonObject, readField } from "../../codec/json-fields.js";
import { parseWireguardKey } from "./options.js";

/**
 * A wireguard lease's BackendData, as flanneld writes it: `{"PublicKey":"<base64>","Port":51820}`
 * (Go's json.Marshal of its wireguardLeaseAttrs: that key order, Port a number). Older flanneld
 * versions wrote no Port; peers then use their own ListenPort, as flanneld does. A dual-stack
 * lease has BackendV6Data of the same shape beside it: the same key (flanneld has one key file
 * for both devices) and the port of the device that carries IPv6.
 */
export interface WireguardBackendData {
  publicKey: string;
  /** undefined: not in the lease (use our ListenPort, or ListenPortV6 for BackendV6Data). */
  port: number | undefined;
}

/** Which of a lease's two backend data fields is meant, for errors. */
export type WireguardDataField = "BackendData" | "BackendV6Data";

export function formatWireguardBackendData(data: { publicKey: string; port: number }): { PublicKey: string; Port: number } {
  return { PublicKey: data.publicKey, Port: data.port };
}

/** Parses BackendData (or BackendV6Data) of a peer's lease; `where` names the lease key in errors. */
export function parseWireguardBackendData(value: unknown, where: string, field: WireguardDataField = "BackendData"): WireguardBackendData {
  if (!isJsonObject(value)) throw new Error(`${where}: ${field} ${JSON.stringify(value) ?? "(absent)"} is not an object with PublicKey`);
  const publicKey = readField(value, "PublicKey");
  if (typeof publicKey !== "string") throw new Error(`${where}: ${field}.PublicKey ${JSON.stringify(publicKey) ?? "(absent)"} is not a string`);
  parseWireguardKey(publicKey, `${where}: ${field}.PublicKey`);
  const port = readField(value, "Port");
  if (port !== undefined && port !== null && (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new Error(`${where}: ${field}.Port ${JSON.stringify(port)} is not a UDP port`);
  }
  return { publicKey, port: typeof port === "number" && port > 0 ? port : undefined };
}
