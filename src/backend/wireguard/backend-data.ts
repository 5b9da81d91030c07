import { isJsonObject, readField } from "../../codec/json-fields.js";
import { parseWireguardKey } from "./options.js";

/**
 * A wireguard lease's BackendData, as flanneld writes it: `{"PublicKey":"<base64>","Port":51820}`
 * (Go's json.Marshal of its wireguardLeaseAttrs: that key order, Port a number). Older flanneld
 * versions wrote no Port; peers then use their own ListenPort, as flanneld does.
 */
export interface WireguardBackendData {
  publicKey: string;
  /** undefined: not in the lease (use our ListenPort). */
  port: number | undefined;
}

export function formatWireguardBackendData(data: { publicKey: string; port: number }): { PublicKey: string; Port: number } {
  return { PublicKey: data.publicKey, Port: data.port };
}

/** Parses BackendData of a peer's lease; `where` names the lease key in errors. */
export function parseWireguardBackendData(value: unknown, where: string): WireguardBackendData {
  if (!isJsonObject(value)) throw new Error(`${where}: BackendData ${JSON.stringify(value)} is not an object with PublicKey`);
  const publicKey = readField(value, "PublicKey");
  if (typeof publicKey !== "string") throw new Error(`${where}: BackendData.PublicKey ${JSON.stringify(publicKey)} is not a string`);
  parseWireguardKey(publicKey, `${where}: BackendData.PublicKey`);
  const port = readField(value, "Port");
  if (port !== undefined && port !== null && (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new Error(`${where}: BackendData.Port ${JSON.stringify(port)} is not a UDP port`);
  }
  return { publicKey, port: typeof port === "number" && port > 0 ? port : undefined };
}
