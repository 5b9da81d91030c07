import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { EtcdServer } from "../../src/lab/etcd-server.js";
import { EtcdStore } from "../../src/store/etcd-store.js";
import { useEtcd } from "../support/etcd.js";

const exec = promisify(execFile);

const fixture = useEtcd();

describe("EtcdStore", () => {
  it("notices a frozen etcd within seconds and names the endpoint and key", async () => {
    const store = new EtcdStore({ endpoints: [fixture().server.endpoint], prefix: "/frozen/network", callTimeoutMs: 1500 });
    await store.put("/frozen/network/config", "{}");
    process.kill(fixture().server.pid!, "SIGSTOP");
    try {
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
    [{ caFile: "/nonexistent/ca.pem" }, /--etcd-cafile: cannot read \/nonexistent\/ca\.pem/],
    [{ prefix: "coreos.com/network" }, /--etcd-prefix: "coreos\.com\/network" must start with "\/"/],
  ])("rejects inconsistent options %j", (options, message) => {
    expect(() => new EtcdStore({ endpoints: ["http://127.0.0.1:2379"], prefix: "/coreos.com/network", ...options })).toThrow(message);
  });

  it("talks to etcd over TLS with a client certificate", async () => {
    const dir = await mkdtemp(join(tmpdir(), "weft-tls-"));
    let server: EtcdServer | undefined;
    try {
      const files = await makeCertificates(dir);
      server = await EtcdServer.start({ tls: { certFile: files.serverCert, keyFile: files.serverKey, caFile: files.ca } });
      expect(server.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const store = new EtcdStore({
        endpoints: [server.endpoint],
        prefix: "/tls/network",
        keyFile: files.clientKey,
        certFile: files.clientCert,
        caFile: files.ca,
      });
      await store.put("/tls/network/config", '{"Network":"10.66.0.0/16"}');
      expect((await store.get("/tls/network/config"))?.value).toBe('{"Network":"10.66.0.0/16"}');
      store.close();
      // Without a client certificate the server refuses.
      const anonymous = new EtcdStore({ endpoints: [server.endpoint], prefix: "/tls/network", caFile: files.ca, callTimeoutMs: 2000 });
      await expect(anonymous.get("/tls/network/config")).rejects.toThrow(/etcd https:\/\/127\.0\.0\.1:\d+: get \/tls\/network\/config/);
      anonymous.close();
    } finally {
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function makeCertificates(dir: string) {
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => exec("openssl", args, { cwd: dir });
  await openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=weft-test-ca", "-keyout", path("ca.key"), "-out", path("ca.pem"));
  await writeFile(path("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  await writeFile(path("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, ext] of [["server", "server.ext"], ["client", "client.ext"]] as const) {
    await openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=weft-test-${name}`, "-keyout", path(`${name}.key`), "-out", path(`${name}.csr`));
    await openssl("x509", "-req", "-in", path(`${name}.csr`), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", path(ext), "-out", path(`${name}.pem`));
  }
  return {
    ca: path("ca.pem"),
    serverCert: path("server.pem"),
    serverKey: path("server.key"),
    clientCert: path("client.pem"),
    clientKey: path("client.key"),
  };
}
