/*
 * EtcdStore and `weft leases` against real etcd servers that check who calls, with real
 * certificates made by openssl for this file:
 *
 *   EtcdStore / weft leases --(https, client cert)--> etcd A  --client-cert-auth, trusts pki.ca
 *             \--------------(http, user:password)--> etcd B  auth enabled; user "weft" may
 *                                                             read and write /weft-auth/ only
 *
 * Every refusal must name the endpoint and what to check (flag, file, user), never a secret,
 * must not make the caller hammer etcd, and must heal once fixed, without a new store.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import type { EtcdStore } from "../../src/store/etcd-store.js";
import { makeTestPki, type TestPki } from "../support/certificates.js";
import { useEtcd } from "../support/etcd.js";
import { TcpProxy } from "../support/tcp-proxy.js";

const execFileAsync = promisify(execFile);
let dir: string;
let pki: TestPki;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "weft-etcdsec-"));
  // Readable by the unprivileged user of the EACCES test (its key file stays 0600).
  await chmod(dir, 0o755);
  pki = await makeTestPki(join(dir, "pki"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The error a call rejects with (the test fails if it resolves). */
async function failure(call: Promise<unknown>): Promise<Error> {
  return call.then(
    () => {
      throw new Error("the call succeeded");
    },
    (error: Error) => error,
  );
}

/** `weft <args>`: exit code, stdout and stderr. */
async function weft(args: string[], prefix: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), weftCliPath(), ...args], { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Calls `store.get` back to back for `ms`, as a careless caller would; how many calls it made. */
async function hammer(store: EtcdStore, ms: number): Promise<number> {
  let calls = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    calls++;
    await store.get(`${store.prefix}/config`).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return calls;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

describe("etcd with TLS client certificates", () => {
  const etcd = useEtcd(() => ({ tls: pki }));
  const endpoint = () => escape(etcd().server.endpoint);

  it("connects with the right CA, certificate and key, and so does `weft leases --json`", async () => {
    const store = etcd().newStore("/tls-ok/network");
    await store.put("/tls-ok/network/config", '{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');
    await store.put("/tls-ok/network/subnets/10.66.5.0-24", '{"PublicIP":"192.168.77.5","PublicIPv6":null,"BackendType":"alloc"}');
    expect((await store.get("/tls-ok/network/config"))?.value).toContain("10.66.0.0/16");
    const leases = await weft(["leases", "--json", "--etcd-prefix=/tls-ok/network", ...etcd().weftFlags()]);
    expect(leases.stderr).toBe("");
    expect(JSON.parse(leases.stdout)).toEqual([expect.objectContaining({ subnet: "10.66.5.0/24", publicIP: "192.168.77.5" })]);
    expect(leases.stdout).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it("a wrong CA: says etcd's certificate is from an unknown authority and names --etcd-cafile (store and CLI)", async () => {
    const store = etcd().newStore("/tls-ca/network", { caFile: pki.otherCa.cert });
    const error = await failure(store.get("/tls-ca/network/config"));
    expect(error.message).toBe(
      `etcd ${etcd().server.endpoint}: get /tls-ca/network/config: TLS handshake failed: etcd's certificate is signed by an unknown authority (check --etcd-cafile ${pki.otherCa.cert})`,
    );
    const flags = etcd().weftFlags().map((flag) => (flag.startsWith("--etcd-cafile=") ? `--etcd-cafile=${pki.otherCa.cert}` : flag));
    const cli = await weft(["leases", "--etcd-prefix=/tls-ca/network", ...flags]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(new RegExp(`^weft: etcd ${endpoint()}: list /tls-ca/network/subnets/: TLS handshake failed: etcd's certificate is signed by an unknown authority \\(check --etcd-cafile ${escape(pki.otherCa.cert)}\\)\n$`));
  });

  it("an expired client certificate: says it expired and when", async () => {
    const store = etcd().newStore("/tls-expired/network", { certFile: pki.expiredClient.cert, keyFile: pki.expiredClient.key });
    const error = await failure(store.get("/tls-expired/network/config"));
    expect(error.message).toBe(
      `etcd ${etcd().server.endpoint}: get /tls-expired/network/config: TLS handshake failed: etcd refused our client certificate: --etcd-certfile ${pki.expiredClient.cert} expired at 2020-01-02T00:00:00.000Z`,
    );
  });

  it("a client certificate from another CA: says etcd refused it and names the file and its issuer", async () => {
    const store = etcd().newStore("/tls-other/network", { certFile: pki.otherClient.cert, keyFile: pki.otherClient.key });
    const error = await failure(store.get("/tls-other/network/config"));
    expect(error.message).toBe(
      `etcd ${etcd().server.endpoint}: get /tls-other/network/config: TLS handshake failed: etcd refused our client certificate --etcd-certfile ${pki.otherClient.cert} (issuer "CN=weft-test-other-ca"): is it signed by a CA in etcd's --trusted-ca-file, and for client use?`,
    );
  });

  it("no client certificate at all: says etcd requires one", async () => {
    const store = etcd().newStore("/tls-none/network", { certFile: undefined, keyFile: undefined });
    const error = await failure(store.get("/tls-none/network/config"));
    expect(error.message).toMatch(new RegExp(`^etcd ${endpoint()}: get /tls-none/network/config: TLS handshake failed: etcd requires a client certificate`));
  });

  it("a missing key file: names the endpoint and the file; the same store works once the file is there", async () => {
    const key = join(dir, "late-client.key");
    const store = etcd().newStore("/tls-late/network", { keyFile: key });
    const error = await failure(store.get("/tls-late/network/config"));
    expect(error.message).toBe(`etcd ${etcd().server.endpoint}: get /tls-late/network/config: --etcd-keyfile ${key}: cannot read: ENOENT: no such file or directory, open '${key}'`);
    expect(store.reachability.current()?.lastError).toBe(error.message);
    await copyFile(pki.client.key, key);
    await store.put("/tls-late/network/config", "{}");
    expect((await store.get("/tls-late/network/config"))?.value).toBe("{}");
    expect(store.reachability.current()).toBeUndefined();
  });

  it("an expired certificate replaced in place: the next call uses the new one, without waiting out the back-off", async () => {
    const cert = join(dir, "rotated.pem");
    const key = join(dir, "rotated.key");
    await copyFile(pki.expiredClient.cert, cert);
    await copyFile(pki.expiredClient.key, key);
    const store = etcd().newStore("/tls-rotate/network", { certFile: cert, keyFile: key });
    const notices: string[] = [];
    store.observeNotices((notice) => notices.push(`${notice.level} ${notice.message}`));
    for (let attempt = 0; attempt < 3; attempt++) await expect(store.get("/tls-rotate/network/config")).rejects.toThrow(/expired at 2020-01-02/);
    await copyFile(pki.client.cert, cert);
    await copyFile(pki.client.key, key);
    const started = Date.now();
    await store.put("/tls-rotate/network/config", "{}");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(notices).toContain(`warn etcd ${etcd().server.endpoint}: --etcd-certfile ${cert}: expired at 2020-01-02T00:00:00.000Z`);
    expect(notices).toContain(`info etcd ${etcd().server.endpoint}: TLS files changed; connecting with the new ones`);
  });

  it("rotated files: a broken half-rotation keeps the working credentials; a complete one moves the open watch to a new client", async () => {
    const cert = join(dir, "live.pem");
    const key = join(dir, "live.key");
    await copyFile(pki.client.cert, cert);
    await copyFile(pki.client.key, key);
    const store = etcd().newStore("/tls-live/network", { certFile: cert, keyFile: key });
    const notices: string[] = [];
    store.observeNotices((notice) => notices.push(notice.message));
    await store.put("/tls-live/network/config", "{}");
    const events: string[] = [];
    const interruptions: string[] = [];
    const cancel = await store.watchPrefix("/tls-live/network/", "1", {
      onEvents: (batch) => events.push(...batch.map((event) => `${event.type} ${event.key}`)),
      onError: (error) => interruptions.push(error.message),
    });
    try {
      // The key written first, the certificate not yet: they do not match, the old pair stays in use.
      await copyFile(pki.otherClient.key, key);
      await store.put("/tls-live/network/a", "1");
      expect(notices).toContain(`etcd ${etcd().server.endpoint}: keeping the TLS credentials in use: --etcd-keyfile ${key}: is not the key of the certificate in --etcd-certfile ${cert}`);
      await expect.poll(() => events).toContain("put /tls-live/network/a");
      expect(interruptions).toEqual([]);
      // Rotation complete (a certificate of the right CA and its key): the next call reconnects, the watch ends with onError.
      await copyFile(pki.client.key, key);
      await store.put("/tls-live/network/b", "2");
      expect(notices).toContain(`etcd ${etcd().server.endpoint}: TLS files changed; connecting with the new ones`);
      expect(interruptions).toEqual([`watch of /tls-live/network/ on ${etcd().server.endpoint}: the TLS files changed; watching again with the new ones`]);
      const again: string[] = [];
      const cancelAgain = await store.watchPrefix("/tls-live/network/", "1", { onEvents: (batch) => again.push(...batch.map((event) => event.key)), onError: () => undefined });
      await expect.poll(() => again).toEqual(["/tls-live/network/config", "/tls-live/network/a", "/tls-live/network/b"]);
      await cancelAgain();
    } finally {
      await cancel();
    }
  });

  it("a key file the process may not read (weft leases as root without CAP_DAC_OVERRIDE): EACCES, naming the file", async () => {
    const key = join(dir, "unreadable.key");
    await copyFile(pki.client.key, key);
    await chmod(key, 0o000);
    const flags = etcd().weftFlags().map((flag) => (flag.startsWith("--etcd-keyfile=") ? `--etcd-keyfile=${key}` : flag));
    // Root that cannot override file modes, not another user: the checkout (a 0700 CI directory,
    // say) stays readable to it, only the mode-000 key is not.
    const noOverride = "-dac_override,-dac_read_search";
    const cli = await weft(["leases", ...flags], ["setpriv", `--inh-caps=${noOverride}`, `--bounding-set=${noOverride}`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe(`weft: etcd ${etcd().server.endpoint}: list /coreos.com/network/subnets/: --etcd-keyfile ${key}: cannot read: EACCES: permission denied, open '${key}'\n`);
  });

  it("a caller retrying at once makes a handful of TLS handshakes, not one per call", async () => {
    const proxy = await TcpProxy.start(etcd().server.options.clientPort);
    const store = etcd().newStore("/tls-loop/network", { endpoints: [`https://127.0.0.1:${proxy.port}`], caFile: pki.otherCa.cert });
    try {
      const calls = await hammer(store, 6000);
      console.log(`wrong CA, calls back to back for 6 s: ${calls} calls, ${proxy.accepted} TCP connections to etcd`);
      expect(calls).toBeGreaterThan(200);
      // Refusal back-off 1, 2, 4 s: 4 rounds in 6 s; etcd3 may retry each up to 3 times.
      expect(proxy.accepted).toBeGreaterThan(0);
      expect(proxy.accepted).toBeLessThanOrEqual(12);
    } finally {
      store.close();
      await proxy.close();
    }
  });
});

describe("etcd with user names and passwords", () => {
  const password = `weft-pw-${randomBytes(6).toString("hex")}`;
  const rootPassword = `root-pw-${randomBytes(6).toString("hex")}`;
  const etcd = useEtcd({ auth: { rootPassword, users: [{ name: "weft", password, prefix: "/weft-auth/" }] } });
  const endpoint = () => etcd().server.endpoint;
  const asUser = (name: string, secret: string) => ({ username: name, password: secret });

  it("the right password works, for the store and `weft leases --json`, which never prints it", async () => {
    const store = etcd().newStore("/weft-auth/network", asUser("weft", password));
    await store.put("/weft-auth/network/subnets/10.66.9.0-24", '{"PublicIP":"192.168.77.9","PublicIPv6":null,"BackendType":"alloc"}');
    const leases = await weft(["leases", "--json", "--etcd-prefix=/weft-auth/network", `--etcd-endpoints=${endpoint()}`, "--etcd-username=weft", `--etcd-password=${password}`]);
    expect(leases.code).toBe(0);
    expect(JSON.parse(leases.stdout)).toEqual([expect.objectContaining({ subnet: "10.66.9.0/24" })]);
    expect(leases.stdout + leases.stderr).not.toContain(password);
  });

  it.each([
    ["a wrong password", "weft", "wrong-pw-4f1e2d"],
    ["an unknown user", "nobody", password],
  ])("%s: names the endpoint and the user, never the password", async (_what, user, secret) => {
    const store = etcd().newStore("/weft-auth/network", asUser(user, secret));
    const error = await failure(store.get("/weft-auth/network/config"));
    expect(error.message).toBe(`etcd ${endpoint()}: get /weft-auth/network/config: authentication failed for user "${user}": wrong --etcd-password, or no such user in etcd`);
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error)) + String(error.stack)).not.toContain(secret);
    const cli = await weft(["leases", "--etcd-prefix=/weft-auth/network", `--etcd-endpoints=${endpoint()}`, `--etcd-username=${user}`, `--etcd-password=${secret}`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe(`weft: etcd ${endpoint()}: list /weft-auth/network/subnets/: authentication failed for user "${user}": wrong --etcd-password, or no such user in etcd\n`);
  });

  it("outside its role's prefix: permission denied, naming the user", async () => {
    const store = etcd().newStore("/elsewhere/network", asUser("weft", password));
    const error = await failure(store.get("/elsewhere/network/config"));
    expect(error.message).toBe(
      `etcd ${endpoint()}: get /elsewhere/network/config: permission denied for user "weft": grant its role readwrite on the key prefix (etcdctl role grant-permission --prefix)`,
    );
  });

  it("a wrong password retried at once costs etcd a few Authenticate calls, and heals once etcd has that password", async () => {
    const wrong = `pw-set-later-${randomBytes(4).toString("hex")}`;
    const store = etcd().newStore("/weft-auth/network", asUser("weft", wrong));
    const before = await etcd().authenticateCalls();
    const calls = await hammer(store, 6000);
    const attempts = (await etcd().authenticateCalls()) - before;
    console.log(`wrong password, calls back to back for 6 s: ${calls} calls, ${attempts} Authenticate calls at etcd`);
    expect(calls).toBeGreaterThan(200);
    expect(attempts).toBeGreaterThan(0);
    expect(attempts).toBeLessThanOrEqual(4);
    // The operator fixes it on etcd's side: the store gets in at its next attempt (back-off at most 30 s).
    await etcd().etcdctl(["user", "passwd", "weft", "--interactive=false"], `${wrong}\n`);
    try {
      const fixedAt = Date.now();
      await expect.poll(() => store.get("/weft-auth/network/config").then(() => "in", () => "refused"), { timeout: 35_000, interval: 200 }).toBe("in");
      console.log(`password fixed in etcd: the store got in after ${Date.now() - fixedAt} ms`);
    } finally {
      await etcd().etcdctl(["user", "passwd", "weft", "--interactive=false"], `${password}\n`);
    }
  }, 60_000);

  it("warns that a password to an http:// endpoint travels in clear text", () => {
    const store = etcd().newStore("/weft-auth/network", asUser("weft", password));
    const notices: string[] = [];
    store.observeNotices((notice) => notices.push(notice.message));
    expect(notices).toEqual([`--etcd-password goes in clear text to ${endpoint()}: use https:// endpoints (and --etcd-cafile)`]);
  });
});
