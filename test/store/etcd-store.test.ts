import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EtcdServer } from "../../src/lab/etcd-server.js";
import { EtcdStore } from "../../src/store/etcd-store.js";
import { makeTestPki } from "../support/certificates.js";
import { useEtcd } from "../support/etcd.js";
import { stopProcess } from "../support/paused-daemon.js";

const fixture = useEtcd();

describe("EtcdStore", () => {
  it("notices a frozen etcd within seconds and names the endpoint and key", async () => {
    const store = new EtcdStore({ endpoints: [fixture().server.endpoint], prefix: "/frozen/network", callTimeoutMs: 1500 });
    await store.put("/frozen/network/config", "{}");
    try {
      await stopProcess(fixture().server.pid!);
      const started = Date.now();
      const error = await store.get("/frozen/network/config").then(
        () => undefined,
        (failure: Error) => failure,
      );
      expect(Date.now() - started).toBeLessThan(6000);
      expect(error?.message).toContain(`etcd ${fixture().server.endpoint}: get /frozen/network/config:`);
    } finally {
      process.kill(fixture().server.pid!, "SIGCONT");
      store.close();
    }
  });

  it("explains an unreachable endpoint instead of hanging", async () => {
    const store = new EtcdStore({ endpoints: ["http://127.0.0.1:9"], prefix: "/x", callTimeoutMs: 1000 });
    const started = Date.now();
    await expect(store.list("/x/subnets/")).rejects.toThrow(/^etcd http:\/\/127\.0\.0\.1:9: list \/x\/subnets\/:/);
    expect(Date.now() - started).toBeLessThan(8000);
    store.close();
  });

  it.each([
    [{ keyFile: "/k" }, /--etcd-keyfile and --etcd-certfile must be given together/],
    [{ username: "root" }, /--etcd-username and --etcd-password must be given together/],
    [{ prefix: "coreos.com/network" }, /--etcd-prefix: "coreos\.com\/network" must start with "\/"/],
  ])("rejects inconsistent options %j", (options, message) => {
    expect(() => new EtcdStore({ endpoints: ["http://127.0.0.1:2379"], prefix: "/coreos.com/network", ...options })).toThrow(message);
  });

  it("reads a TLS file on first use: a missing one fails each call, naming the endpoint and the file", async () => {
    const store = new EtcdStore({ endpoints: ["https://127.0.0.1:9"], prefix: "/x", caFile: "/nonexistent/ca.pem" });
    await expect(store.get("/x/config")).rejects.toThrow(/^etcd https:\/\/127\.0\.0\.1:9: get \/x\/config: --etcd-cafile \/nonexistent\/ca\.pem: cannot read: ENOENT/);
    store.close();
  });

  it("talks to etcd over TLS with a client certificate", async () => {
    const dir = await mkdtemp(join(tmpdir(), "weft-tls-"));
    let server: EtcdServer | undefined;
    try {
      const pki = await makeTestPki(dir);
      server = await EtcdServer.start({ tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca.cert } });
      expect(server.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const store = new EtcdStore({
        endpoints: [server.endpoint],
        prefix: "/tls/network",
        keyFile: pki.client.key,
        certFile: pki.client.cert,
        caFile: pki.ca.cert,
      });
      await store.put("/tls/network/config", '{"Network":"10.66.0.0/16"}');
      expect((await store.get("/tls/network/config"))?.value).toBe('{"Network":"10.66.0.0/16"}');
      store.close();
      // Without a client certificate the server refuses.
      const anonymous = new EtcdStore({ endpoints: [server.endpoint], prefix: "/tls/network", caFile: pki.ca.cert, callTimeoutMs: 2000 });
      await expect(anonymous.get("/tls/network/config")).rejects.toThrow(/etcd https:\/\/127\.0\.0\.1:\d+: get \/tls\/network\/config/);
      anonymous.close();
    } finally {
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
