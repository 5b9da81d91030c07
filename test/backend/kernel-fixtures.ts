import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { Registry } from "prom-client";
import type { BackendContext } from "../../src/backend/backend.js";
import { networkConfigFromJson } from "../../src/config/network-config.js";
import type { Lease, LeaseAttrs } from "../../src/lease/types.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { silentLogger } from "../../src/observe/logger.js";

/** A BackendContext for a backend running in this process but programming a test namespace. */
export async function backendContext(backend: Record<string, unknown>, external: { name: string; address: string; publicIP?: string; mtu?: number }, stateDir?: string): Promise<BackendContext> {
  const network = networkConfigFromJson({ Network: "10.66.0.0/16", Backend: backend });
  return {
    network,
    options: network.backend.options,
    external: { name: external.name, index: 0, address: external.address, publicIP: external.publicIP ?? external.address, mtu: external.mtu ?? 1500 },
    logger: silentLogger(),
    metrics: new Registry(),
    stateDir: stateDir ?? (await mkdtemp(join(tmpdir(), "weft-backend-state-"))),
  };
}

export function lease(subnet: string, attrs: Omit<LeaseAttrs, "publicIPv6">): Lease {
  const parsed = Ipv4Subnet.parse(subnet);
  return {
    subnet: parsed,
    attrs: { publicIPv6: null, ...attrs },
    key: `/coreos.com/network/subnets/${subnet.replace("/", "-")}`,
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
