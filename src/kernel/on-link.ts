import { parseIpv4 } from "../net/ipv4.js";
import type { RouteState } from "./kernel.js";

/**
 * Whether `address` is on a directly connected network: the most specific main-table route to
 * it has no gateway (what flannel's DirectRouting and host-gw rely on, flannel-compat §6–7). Computed
 * from one route snapshot so checking 1000 peers costs one `ip route show`, not 1000 lookups.
 * Routes into `exclude` (the overlay Network itself) are skipped: they are weft's own.
 */
export function onLinkDevice(address: string, routes: readonly RouteState[], exclude?: { containsAddress(a: number): boolean }): string | undefined {
  const target = parseIpv4(address);
  let best: RouteState | undefined;
  for (const route of routes) {
    if (route.type !== "unicast" || !route.destination.containsAddress(target)) continue;
    if (exclude && route.destination.prefixLength > 0 && exclude.containsAddress(route.destination.network)) continue;
    if (!best || route.destination.prefixLength > best.destination.prefixLength) best = route;
  }
  return best && best.gateway === undefined ? best.device : undefined;
}
