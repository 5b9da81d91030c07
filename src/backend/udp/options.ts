import { readInteger, readString, type JsonObject } from "../../codec/json-fields.js";
import { assertDeviceName } from "../../kernel/objects.js";
import { parseQueueOptions, type QueueOptions } from "../userspace/queue-options.js";

/** The udp Backend options (flannel-compat §1.3): `Port` (8285), plus weft's `TunName`, `Queues`, `QueueThreads`. */
export interface UdpOptions extends QueueOptions {
  port: number;
  /** The TUN device; default "flannel%d", the template flanneld uses (the kernel picks flannel0). */
  tunName: string;
}

export const DEFAULT_UDP_PORT = 8285;
/** Outer IPv4 20 + UDP 8 (flannel-compat §3.3). */
export const UDP_OVERHEAD = 28;
export const DEFAULT_UDP_TUN_NAME = "flannel%d";

export function parseUdpOptions(options: JsonObject): UdpOptions {
  const port = readInteger(options, "Port", "Backend.Port", { min: 1, max: 65_535 }) ?? DEFAULT_UDP_PORT;
  const tunName = readString(options, "TunName", "Backend.TunName") ?? DEFAULT_UDP_TUN_NAME;
  assertDeviceName(tunName.replace("%d", "0"), "Backend.TunName");
  return { port, tunName, ...parseQueueOptions(options) };
}
