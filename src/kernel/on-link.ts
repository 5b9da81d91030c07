import { Ipv4Subnet, parseIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, parseIpv6 } from "../net/ipv6.js";
import { subnetContains, type IpSubnet } from "../net/ip-subnet.js";
import type { RouteState } from "./kernel.js";

/**
 * Whether `address` is on a directly connected network: the most specific main-table route to
 * it has no gateway (what flannel's DirectRouting and host-gw rely on, flannel-compat §6–7). Computed
 * from one route snapshot so checking 1000 peers costs one `ip route show`, not 1000 lookups.
 * Routes into `exclude` (the overlay Network itself) are skipped: they are weft's own.
 * `address` and `routes` are of one family (an IPv6 address against the `ip -6 route` snapshot);
 * routes of the other family never match.
 */
export function onLinkDevice(address: string, routes: readonly RouteState[], exclude?: IpSubnet): string | undefined {
  const ipv6 = address.includes(":");
  const target = ipv6 ? new Ipv6Subnet(parseIpv6(address), 128) : new Ipv4Subnet(parseIpv4(address), 32);
  let best: RouteState | undefined;
  for (const route of routes) {
    if (route.type !== "unicast" || !subnetContains(route.destination, target)) continue;
    if (exclude && route.destination.prefixLength > 0 && subnetContains(exclude, route.destination)) continue;
    if (!best || route.destination.prefixLength > best.destination.prefixLength) best = route;
  }
  return best && best.gateway === undefined ? best.device : undefined;
}
