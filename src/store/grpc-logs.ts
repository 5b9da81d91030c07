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
  dropIpServernameWarning((message) => grpc.debug(message));
  const text = (message: unknown, rest: unknown[]) => [message, ...rest].map(String).join(" ").trim();
  setLogger({
    error: (message?: unknown, ...rest: unknown[]) => grpc.warn(`grpc: ${text(message, rest)}`),
    info: (message?: unknown, ...rest: unknown[]) => grpc.debug(`grpc: ${text(message, rest)}`),
    debug: (message?: unknown, ...rest: unknown[]) => grpc.debug(`grpc: ${text(message, rest)}`),
  });
}

let servernameWarningDropped = false;

/**
 * gRPC gives TLS the endpoint's host as server name, also when it is an IP address (etcd
 * endpoints usually are), and Node warns once per process (DEP0123) on stderr: a raw line in
 * the JSON log and in every CLI error. Harmless here, as the certificate is still checked
 * against the address (an IP SAN); only that warning is dropped (or handed to `note`).
 */
export function dropIpServernameWarning(note?: (message: string) => void): void {
  if (servernameWarningDropped) return;
  servernameWarningDropped = true;
  const emitWarning = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === "object" && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === "DEP0123") {
      note?.(`node: ${typeof warning === "string" ? warning : warning.message}`);
      return;
    }
    (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}
