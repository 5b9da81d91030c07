import { setLogger } from "@grpc/grpc-js";
import type { Logger } from "pino";

/**
 * The gRPC library under the etcd client prints its own messages ("E … rejected by server
 * because of excess pings") straight to stderr, which broke the one-JSON-object-per-line log.
 * Route them through `logger` instead: gRPC's errors as warnings (it retries by itself; weft
 * reports what matters as etcd reachability), its info/debug as debug. Process-wide, as gRPC's
 * logger is; the one @grpc/grpc-js in node_modules is the one etcd3 uses (same version).
 */
export function routeGrpcLogs(logger: Logger): void {
  const grpc = logger.child({ component: "grpc" });
  const text = (message: unknown, rest: unknown[]) => [message, ...rest].map(String).join(" ").trim();
  setLogger({
    error: (message?: unknown, ...rest: unknown[]) => grpc.warn(`grpc: ${text(message, rest)}`),
    info: (message?: unknown, ...rest: unknown[]) => grpc.debug(`grpc: ${text(message, rest)}`),
    debug: (message?: unknown, ...rest: unknown[]) => grpc.debug(`grpc: ${text(message, rest)}`),
  });
}
