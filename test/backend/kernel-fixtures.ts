import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { Registry } from "prom-client";
import type { BackendContext } from "../../src/backend/backend.js";
import { networkConfigFromJson } from "../../src/config/network-config.js";
import type { Lease, LeaseAttrs } from "../../src/lease/types.js";
import { subnetKey } from "../../src/lease/subnet-key.js";
import type { ExternalInterface } from "../../src/config/external-interface.js";
import type { JsonObject } from "../../src/codec/json-fields.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { silentLogger } from "../../src/observe/logger.js";

/** The dual-stack network keys of the IPv6 tests: 10.66.0.0/16 plus fd66::/48 in /64s. */
export const DUAL_STACK: JsonObject = { EnableIPv6: true, IPv6Network: "fd66::/48" };

/**
 * A BackendContext for a backend running in this process but programming a test namespace.
 * `network` adds keys to the network config (DUAL_STACK); `external.addressV6` is what the
 * control plane fills for a dual-stack host (publicIPv6 defaults to it).
 */
export async function backendContext(
  backend: Record<string, unknown>,
  external: { name: string; address: string; publicIP?: string; mtu?: number; addressV6?: string; publicIPv6?: string },
  stateDir?: string,
  network: JsonObject = {},
): Promise<BackendContext> {
  const config = networkConfigFromJson({ Network: "10.66.0.0/16", ...network, Backend: backend as JsonObject });
  const externalInterface: ExternalInterface = { name: external.name, index: 0, address: external.address, publicIP: external.publicIP ?? external.address, mtu: external.mtu ?? 1500 };
  if (external.addressV6 !== undefined) {
    externalInterface.addressV6 = external.addressV6;
    externalInterface.publicIPv6 = external.publicIPv6 ?? external.addressV6;
  }
  return {
    network: config,
    options: config.backend.options,
    external: externalInterface,
    logger: silentLogger(),
    metrics: new Registry(),
    stateDir: stateDir ?? (await mkdtemp(join(tmpdir(), "weft-backend-state-"))),
  };
}

/** A lease as the watcher delivers it; with `ipv6Subnet`, a dual-stack one (key `10.66.1.0-24&fd66:0:0:1::-64`). */
export function lease(subnet: string, attrs: Omit<LeaseAttrs, "publicIPv6"> & { publicIPv6?: string | null }, ipv6Subnet?: string): Lease {
  const parsed = Ipv4Subnet.parse(subnet);
  const parsedV6 = ipv6Subnet === undefined ? undefined : Ipv6Subnet.parse(ipv6Subnet);
  return {
    subnet: parsed,
    ...(parsedV6 ? { ipv6Subnet: parsedV6 } : {}),
    attrs: { publicIPv6: null, ...attrs },
    key: subnetKey("/coreos.com/network/subnets/", parsedV6 ? { subnet: parsed, ipv6Subnet: parsedV6 } : { subnet: parsed }),
    reservation: false,
  };
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A real pino logger whose lines are kept for assertions (level 40 = warn, 50 = error). */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}
