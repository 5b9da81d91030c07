import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { Gauge } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { startHttpServer, type Readiness, type RunningHttpServer } from "../../src/observe/http-server.js";
import { silentLogger } from "../../src/observe/logger.js";
import { createMetrics } from "../../src/observe/metrics.js";
import { waitUntil } from "../../src/lab/readiness.js";

const started: RunningHttpServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.close()));
});

async function start(readiness: () => Readiness, closeGraceMs?: number): Promise<{ server: RunningHttpServer; base: string; metrics: ReturnType<typeof createMetrics> }> {
  const metrics = createMetrics({ collectDefault: false });
  const server = await startHttpServer({ host: "127.0.0.1", port: 0, registry: metrics.registry, readiness, logger: silentLogger(), closeGraceMs });
  started.push(server);
  return { server, base: `http://127.0.0.1:${server.port}`, metrics };
}

/** Whether a new TCP connection to the port on loopback is accepted. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

async function get(url: string, method = "GET"): Promise<{ status: number; body: string; type: string | null }> {
  const response = await fetch(url, { method });
  return { status: response.status, body: await response.text(), type: response.headers.get("content-type") };
}

describe("startHttpServer", () => {
  it("answers /healthz, /metrics and 404 on loopback with a free port", async () => {
    const { server, base, metrics } = await start(() => ({ ready: true, checks: {} }));
    expect(server.address).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
    expect(await get(`${base}/healthz`)).toMatchObject({ status: 200, body: "weft is running" });
    metrics.peers.set(4);
    const scraped = await get(`${base}/metrics`);
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(scraped.body).toMatch(/^weft_peers 4$/m);
    for (const path of ["/", "/health", "/metrics/x"]) {
      const missing = await get(`${base}${path}`);
      expect(missing.status, path).toBe(404);
      expect(missing.body).toContain("/healthz, /readyz, /metrics");
    }
    expect((await get(`${base}/healthz`, "POST")).status).toBe(405);
    const head = await get(`${base}/healthz`, "HEAD");
    expect(head).toMatchObject({ status: 200, body: "" });
  });

  it("/readyz follows the readiness function and names what is not ready", async () => {
    let readiness: Readiness = { ready: false, checks: { lease: true, subnetEnv: false, backend: "vxlan device missing" } };
    const { base } = await start(() => readiness);
    const notReady = await get(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toBe("weft is not ready yet\n[-] subnetEnv not ready\n[-] backend vxlan device missing\n");
    const verbose = await get(`${base}/readyz?verbose`);
    expect(verbose.body).toBe("weft is not ready yet\n[+] lease ok\n[-] subnetEnv not ready\n[-] backend vxlan device missing\n");
    const json = await get(`${base}/readyz?format=json`);
    expect(json.status).toBe(503);
    expect(JSON.parse(json.body)).toEqual(readiness);

    readiness = { ready: true, checks: { lease: true, subnetEnv: true, backend: true } };
    expect(await get(`${base}/readyz`)).toMatchObject({ status: 200, body: "weft is ready" });
    expect((await get(`${base}/readyz?verbose`)).body).toBe("weft is ready\n[+] lease ok\n[+] subnetEnv ok\n[+] backend ok\n");
  });

  it("/readyz shows what runs (details) with ?verbose and in JSON, not in the short answer", async () => {
    const readiness: Readiness = { ready: true, checks: { backend: true }, details: { wireguardImplementation: "wireguard-go" } };
    const { base } = await start(() => readiness);
    expect(await get(`${base}/readyz`)).toMatchObject({ status: 200, body: "weft is ready" });
    expect((await get(`${base}/readyz?verbose`)).body).toBe("weft is ready\n[+] backend ok\n[i] wireguardImplementation wireguard-go\n");
    expect(JSON.parse((await get(`${base}/readyz?format=json`)).body)).toEqual(readiness);
  });

  it("a throwing readiness function is a 503 with the reason, not a crash", async () => {
    const { base } = await start(() => {
      throw new Error("daemon not wired");
    });
    expect(await get(`${base}/readyz`)).toMatchObject({ status: 503, body: "weft is not ready yet\n[-] readiness check failed: daemon not wired\n" });
    expect((await get(`${base}/healthz`)).status).toBe(200);
  });

  it("a failing metric collector is a 500 and the server keeps serving", async () => {
    const { base, metrics } = await start(() => ({ ready: true, checks: {} }));
    new Gauge({
      name: "weft_broken",
      help: "throws",
      registers: [metrics.registry],
      collect() {
        throw new Error("collector exploded");
      },
    });
    const failed = await get(`${base}/metrics`);
    expect(failed.status).toBe(500);
    expect(failed.body).toContain("collector exploded");
    expect((await get(`${base}/healthz`)).status).toBe(200);
  });

  it("refuses a port in use with an actionable error", async () => {
    const { server } = await start(() => ({ ready: true, checks: {} }));
    await expect(
      startHttpServer({ host: "127.0.0.1", port: server.port, registry: createMetrics({ collectDefault: false }).registry, readiness: () => ({ ready: true, checks: {} }), logger: silentLogger() }),
    ).rejects.toThrow(`health server: cannot listen on 127.0.0.1:${server.port}: listen EADDRINUSE`);
  });

  it("close() lets a request in flight finish, then returns without waiting out the grace", async () => {
    const { server, base, metrics } = await start(() => ({ ready: true, checks: {} }), 1_000);
    let release: () => void = () => undefined;
    let stuck = true;
    let collecting = false;
    new Gauge({
      name: "weft_slow",
      help: "waits",
      registers: [metrics.registry],
      async collect() {
        collecting = true;
        if (stuck) await new Promise<void>((resolve) => (release = resolve));
        this.set(1);
      },
    });
    // A request in flight finishes within the grace.
    const inFlight = get(`${base}/metrics`);
    await waitUntil("the scrape to reach the slow gauge", () => collecting);
    const closed = server.close();
    await waitUntil("the server to stop accepting connections", async () => !(await accepts(server.port)));
    stuck = false;
    release();
    expect((await inFlight).body).toMatch(/^weft_slow 1$/m);
    const t0 = performance.now();
    await closed;
    expect(performance.now() - t0).toBeLessThan(500);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it("close() does not wait longer than the grace for a request that never ends", async () => {
    const { server, base, metrics } = await start(() => ({ ready: true, checks: {} }), 500);
    let collecting = false;
    new Gauge({
      name: "weft_hang",
      help: "never returns",
      registers: [metrics.registry],
      collect: () => {
        collecting = true;
        return new Promise<void>(() => undefined);
      },
    });
    const hung = new Promise<string>((resolve) => {
      httpRequest(`${base}/metrics`, (response) => resolve(`status ${response.statusCode}`)).on("error", (error) => resolve(error.message)).end();
    });
    await waitUntil("the scrape to reach the hanging gauge", () => collecting);
    const t0 = performance.now();
    await server.close();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1_500);
    expect(await hung).toBe("socket hang up");
  });

  it("close() with idle keep-alive clients returns at once, and twice is harmless", async () => {
    const { server, base } = await start(() => ({ ready: true, checks: {} }));
    await get(`${base}/healthz`);
    const t0 = performance.now();
    await Promise.all([server.close(), server.close()]);
    expect(performance.now() - t0).toBeLessThan(500);
  });
});
