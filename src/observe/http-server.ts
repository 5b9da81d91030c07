import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "./logger.js";
import { errorMessage } from "../errors/error-message.js";
import { renderStatusPage, type StatusModel } from "./status-page.js";

/**
 * The daemon's one HTTP server (flanneld's --healthz-ip/--healthz-port, flannel-compat §9):
 *   GET /healthz  200 "weft is running" while the process serves requests;
 *   GET /readyz   200 "weft is ready", or 503 naming the checks that are not ready
 *                 (`?verbose` lists every check, `?format=json` answers JSON);
 *   GET /metrics  Prometheus text from `registry`;
 *   GET /status   a read-only HTML page for people (status-page.ts), when `status` is given;
 *   anything else 404.
 */
export interface Readiness {
  ready: boolean;
  /** true = ok; false = not yet; a string = not ok, with the reason (e.g. "etcd unreachable"). */
  checks: Record<string, boolean | string>;
  /** Conditions that do not stop forwarding but an operator should see (e.g. "etcd unreachable since …"); shown always. */
  notes?: Record<string, string>;
  /** What runs (e.g. the WireGuard implementation): shown with ?verbose and in the JSON form. */
  details?: Record<string, string>;
}

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port (tests); the daemon treats --healthz-port=0 as "no server" before calling. */
  port: number;
  registry: Registry;
  readiness: () => Readiness;
  /** What /status shows; without it /status is 404. */
  status?: () => Promise<StatusModel>;
  logger: Logger;
  /** How long close() lets requests in flight finish; default 3 s as flanneld. */
  closeGraceMs?: number;
}

export interface RunningHttpServer {
  address: string;
  port: number;
  /** Stops accepting, lets requests in flight finish within the grace period, then cuts the rest. */
  close(): Promise<void>;
}

export const DEFAULT_CLOSE_GRACE_MS = 3000;

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { logger } = options;
  let closing: Promise<void> | undefined;
  const server = createServer((request, response) => {
    // While closing, a keep-alive connection must not outlive the request it carried.
    response.on("finish", () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    handle(options, request, response).catch((error: unknown) => {
      logger.error({ err: error, url: request.url }, "HTTP request failed");
      if (!response.headersSent) reply(response, 500, `internal error: ${errorMessage(error)}\n`);
      else response.destroy();
    });
  });
  // Slow or idle clients must not hold sockets forever on a host daemon.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const hint =
        error.code === "EADDRINUSE"
          ? "another process listens there; pick another --healthz-port"
          : error.code === "EADDRNOTAVAIL"
            ? "that address is not on this host; fix --healthz-ip"
            : "check --healthz-ip and --healthz-port";
      reject(new Error(`health server: cannot listen on ${options.host}:${options.port}: ${error.message}; ${hint}`));
    };
    server.once("error", onError);
    server.listen(options.port, options.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (error) => logger.error({ err: error }, "health server error"));

  const bound = server.address() as AddressInfo;
  logger.info({ address: bound.address, port: bound.port }, "health server listening (/healthz, /readyz, /metrics)");

  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const grace = setTimeout(() => {
        logger.warn({ graceMs: options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS }, "health server: cutting requests still open");
        server.closeAllConnections();
      }, options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
      grace.unref();
      server.close(() => {
        clearTimeout(grace);
        resolve();
      });
      // Keep-alive connections with no request in flight would otherwise hold close() for the whole grace.
      server.closeIdleConnections();
    });
    return closing;
  };

  return { address: bound.address, port: bound.port, close };
}

async function handle(options: HttpServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? "/", "http://weft.invalid");
  const route = ROUTES[url.pathname];
  if (!route || (url.pathname === "/status" && !options.status)) {
    reply(response, 404, `404 page not found: ${url.pathname} (weft serves /healthz, /readyz, /metrics, /status)\n`);
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("Allow", "GET, HEAD");
    reply(response, 405, `${request.method ?? "?"} is not allowed on ${url.pathname}; use GET\n`);
    return;
  }
  await route(options, url, response);
}

type Route = (options: HttpServerOptions, url: URL, response: ServerResponse) => Promise<void> | void;

const ROUTES: Readonly<Record<string, Route>> = {
  "/healthz": (_options, _url, response) => reply(response, 200, "weft is running"),
  "/readyz": (options, url, response) => {
    let readiness: Readiness;
    try {
      readiness = options.readiness();
    } catch (error) {
      readiness = { ready: false, checks: { readiness: `check failed: ${errorMessage(error)}` } };
    }
    const status = readiness.ready ? 200 : 503;
    if (url.searchParams.get("format") === "json") {
      reply(response, status, `${JSON.stringify(readiness)}\n`, "application/json");
      return;
    }
    const lines = Object.entries(readiness.checks)
      .filter(([, value]) => url.searchParams.has("verbose") || value !== true)
      .map(([name, value]) => (value === true ? `[+] ${name} ok` : `[-] ${name} ${value === false ? "not ready" : value}`));
    for (const [name, note] of Object.entries(readiness.notes ?? {})) lines.push(`[!] ${name} ${note}`);
    if (url.searchParams.has("verbose")) for (const [name, detail] of Object.entries(readiness.details ?? {})) lines.push(`[i] ${name} ${detail}`);
    const verdict = readiness.ready ? "weft is ready" : "weft is not ready yet";
    reply(response, status, lines.length > 0 ? `${verdict}\n${lines.join("\n")}\n` : verdict);
  },
  "/status": async (options, _url, response) => {
    const model = await (options.status as () => Promise<StatusModel>)();
    response.setHeader("Cache-Control", "no-store");
    // No script, no external asset: nothing for the page to load or run.
    response.setHeader("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    reply(response, 200, renderStatusPage(model), "text/html; charset=utf-8");
  },
  "/metrics": async (options, _url, response) => {
    const text = await options.registry.metrics();
    reply(response, 200, text, options.registry.contentType);
  },
};

function reply(response: ServerResponse, status: number, body: string, contentType = "text/plain; charset=utf-8"): void {
  response.statusCode = status;
  response.setHeader("Content-Type", contentType);
  response.setHeader("Content-Length", Buffer.byteLength(body));
  response.end(response.req.method === "HEAD" ? undefined : body);
}
