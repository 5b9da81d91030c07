import { runCommand } from "../process/run-command.js";

/**
 * The kernel's path MTU cache for one destination (`ip -j route get`): what an earlier
 * frag-needed taught this host, also when the router now rate-limits its ICMP errors.
 * undefined when there is no cached exception (the route's own MTU applies).
 */
export async function cachedPathMtu(destination: string): Promise<number | undefined> {
  const family = destination.includes(":") ? "-6" : "-4";
  const result = await runCommand("ip", ["-j", family, "route", "get", destination], { allowFailure: true, timeoutMs: 5000, purpose: "reading the path MTU cache" });
  if (result.exitCode !== 0) return undefined;
  return pathMtuFromRouteGet(result.stdout);
}

/** Pure: the cached MTU in `ip -j route get` output ("metrics":[{"mtu":N}] with "expires" in the cache flags). */
export function pathMtuFromRouteGet(json: string): number | undefined {
  let routes: unknown;
  try {
    routes = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(routes)) return undefined;
  for (const route of routes as unknown[]) {
    if (typeof route !== "object" || route === null) continue;
    const { metrics, mtu } = route as { metrics?: unknown; mtu?: unknown };
    if (typeof mtu === "number") return mtu;
    if (!Array.isArray(metrics)) continue;
    for (const metric of metrics as unknown[]) {
      if (typeof metric === "object" && metric !== null && typeof (metric as { mtu?: unknown }).mtu === "number") {
        return (metric as { mtu: number }).mtu;
      }
    }
  }
  return undefined;
}
