import { sameSubnet, subnetContains, type IpSubnet } from "../net/ip-subnet.js";
import type { RouteObject } from "./objects.js";
import type { RouteState } from "./kernel.js";

/** Where a backend's routes of one family live (IPv6: the IPv6Network and the own IPv6 subnet). */
export interface RouteScope {
  /** The flannel Network: nothing outside it is ever weft's. */
  network: IpSubnet;
  ownSubnet: IpSubnet;
  /** Devices of the overlay itself (flannel.N). */
  overlayDevices: readonly string[];
  /** The external interface, where host-gw and DirectRouting put routes via a peer's PublicIP. */
  underlayDevices: readonly string[];
}

/**
 * The routes weft owns: inside the flannel Network, not made by the kernel, and through one of
 * the backend's devices. Reconcile removes owned routes no lease backs (flannel-compat §12 #10), so this
 * must never match anything another tool made outside the Network or on other devices.
 *
 * A route to the own subnet is never desired; it is weft's (and stale: a peer's route left from
 * before the own lease moved to that subnet) when it goes through the overlay device or via a
 * gateway. docker0's connected route for the own subnet is on another device and kernel-made,
 * so it never matches.
 */
export function ownedRoutes(routes: readonly RouteState[], scope: RouteScope): RouteObject[] {
  const devices = [...scope.overlayDevices, ...scope.underlayDevices];
  return routes
    .filter(
      (route) =>
        route.type === "unicast" &&
        route.protocol !== "kernel" &&
        devices.includes(route.device) &&
        subnetContains(scope.network, route.destination) &&
        (!sameSubnet(route.destination, scope.ownSubnet) || route.gateway !== undefined || scope.overlayDevices.includes(route.device)),
    )
    .map(({ destination, gateway, device, onlink }) => ({ kind: "route", destination, gateway, device, onlink }));
}
