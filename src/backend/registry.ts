import type { BackendFactory } from "./backend.js";
import { allocBackend } from "./alloc.js";
import { vxlanBackend } from "./vxlan/vxlan-backend.js";
import { hostGwBackend } from "./host-gw/host-gw-backend.js";
import { udpBackend } from "./udp/udp-backend.js";
import { wireguardBackend } from "./wireguard/wireguard-backend.js";

/** Backends by their config `Type` name (lower case). Add a backend here, one line each. */
const factories: ReadonlyMap<string, BackendFactory> = new Map<string, BackendFactory>([
  [allocBackend.type, allocBackend],
  [vxlanBackend.type, vxlanBackend],
  [hostGwBackend.type, hostGwBackend],
  [udpBackend.type, udpBackend],
  [wireguardBackend.type, wireguardBackend],
]);

export function backendTypes(): string[] {
  return [...factories.keys()].sort();
}

export function findBackend(type: string): BackendFactory {
  const factory = factories.get(type.toLowerCase());
  if (!factory) {
    throw new Error(`Backend.Type: "${type}" is not a backend weft knows; use one of ${backendTypes().join(", ")}`);
  }
  return factory;
}
