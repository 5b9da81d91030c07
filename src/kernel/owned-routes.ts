import type { Ipv4Subnet } from "../net/ipv4.js";
import type { RouteObject } from "./objects.js";
import type { RouteState } from "./kernel.js";

/**
 * The routes weft owns: inside the flannel Network, not the own subnet (docker0's), not made
 * by the kernel, and through one of the backend's devices. Reconcile removes owned routes no
 * lease backs (spec §12 #10), so this must never match anything another tool made outside
 * the Network or on other devices.
 */
export function ownedRoutes(
  routes: readonly RouteState[],
  network: Ipv4Subnet,
  ownSubnet: Ipv4Subnet,
  devices: readonly string[],
): RouteObject[] {
  return routes
    .filter(
      (route) =>
        route.type === "unicast" &&
        route.protocol !== "kernel" &&
        devices.includes(route.device) &&
        network.contains(route.destination) &&
        !route.destination.equals(ownSubnet),
    )
    .map(({ destination, gateway, device, onlink }) => ({ kind: "route", destination, gateway, device, onlink }));
}
