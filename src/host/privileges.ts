import { readFileSync } from "node:fs";
import { ConfigurationError } from "../errors/configuration-error.js";

/** CAP_NET_ADMIN's bit in the capability sets (linux/capability.h). */
const CAP_NET_ADMIN = 12n;

/** True when this process may program interfaces, routes and nftables (root or CAP_NET_ADMIN). */
export function hasNetAdmin(statusText: string = readFileSync("/proc/self/status", "utf8")): boolean {
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  if (!match) return process.getuid?.() === 0;
  return ((BigInt(`0x${match[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

/** Fails early, naming what needs the privilege, instead of retrying a kernel call forever. */
export function assertNetAdmin(what: string): void {
  if (!hasNetAdmin()) {
    throw new ConfigurationError(`${what} needs root or CAP_NET_ADMIN; run weft as root (sudo) or grant the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)`);
  }
}
