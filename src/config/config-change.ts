import { formatIpv4 } from "../net/ipv4.js";
import { formatIpv6 } from "../net/ipv6.js";
import type { NetworkConfig } from "./network-config.js";

/**
 * Why `next` cannot replace `running` in a live daemon: the fields leases and routes depend on
 * (EnableIPv4, Network, SubnetLen, SubnetMin, SubnetMax, EnableIPv6 and the IPv6 ones, Backend.Type), as
 * "Network 10.66.0.0/16 → 10.77.0.0/16, …";
 * undefined when it can (backend options and the rest are not checked here).
 */
export function incompatibility(running: NetworkConfig, next: NetworkConfig): string | undefined {
  const fields: [string, string, string][] = [
    ["EnableIPv4", String(running.enableIPv4), String(next.enableIPv4)],
    ["Network", running.ipv4?.network.toString() ?? "-", next.ipv4?.network.toString() ?? "-"],
    ["SubnetLen", String(running.ipv4?.subnetLen ?? "-"), String(next.ipv4?.subnetLen ?? "-")],
    ["SubnetMin", ipv4Text(running.ipv4?.subnetMin), ipv4Text(next.ipv4?.subnetMin)],
    ["SubnetMax", ipv4Text(running.ipv4?.subnetMax), ipv4Text(next.ipv4?.subnetMax)],
    ["EnableIPv6", String(running.enableIPv6), String(next.enableIPv6)],
    ["IPv6Network", running.ipv6?.network.toString() ?? "-", next.ipv6?.network.toString() ?? "-"],
    ["IPv6SubnetLen", String(running.ipv6?.subnetLen ?? "-"), String(next.ipv6?.subnetLen ?? "-")],
    ["IPv6SubnetMin", ipv6Text(running.ipv6?.subnetMin), ipv6Text(next.ipv6?.subnetMin)],
    ["IPv6SubnetMax", ipv6Text(running.ipv6?.subnetMax), ipv6Text(next.ipv6?.subnetMax)],
    ["Backend.Type", running.backend.type, next.backend.type],
  ];
  const changed = fields.filter(([, a, b]) => a !== b).map(([name, a, b]) => `${name} ${a} → ${b}`);
  return changed.length > 0 ? changed.join(", ") : undefined;
}

function ipv4Text(address: number | undefined): string {
  return address === undefined ? "-" : formatIpv4(address);
}

function ipv6Text(address: bigint | undefined): string {
  return address === undefined ? "-" : formatIpv6(address);
}
