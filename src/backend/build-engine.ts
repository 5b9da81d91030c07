import type { NetworkConfig } from "../config/network-config.js";
import type { BuildEngine } from "../observe/metrics.js";

/**
 * weft_build_info's `engine` label: where this host's data path runs. Known from the config
 * for every backend but wireguard, whose implementation is chosen at registration (the kernel
 * module if the probe finds it, weft's engine, or Debian's wireguard-go); `details` are the
 * backend's dataPathDetails() once it registered.
 */
export function buildEngineOf(config: NetworkConfig, details: Readonly<Record<string, string>> = {}): BuildEngine {
  const type = config.backend.type;
  if (type === "alloc") return "none";
  if (type === "udp" || type === "vxlan-userspace" || (type === "vxlan" && config.backend.options.Userspace === true)) return "userspace";
  if (type === "wireguard") {
    const implementation = details.wireguardImplementation;
    if (implementation === "userspace") return "userspace";
    if (implementation === "wireguard-go") return "wireguard-go";
    if (implementation === "kernel") return "kernel";
    return ""; // not chosen yet
  }
  return "kernel";
}
