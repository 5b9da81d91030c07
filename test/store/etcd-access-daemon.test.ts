/*
 * `weft run` (alloc backend, underlay lo: it only talks to etcd on loopback) refused by a real
 * etcd, then let in once the operator fixes the problem, without a restart:
 *
 *   weft run --(https, wrong --etcd-cafile)--> TcpProxy (counts connections) --> etcd A (TLS)
 *   weft run --(http, wrong --etcd-password)-----------------------------------> etcd B (auth)
 *
 * While refused the daemon stays up, says why (endpoint, file or user), retries without a hot
 * loop (connections or Authenticate calls counted at the far end, CPU time from /proc), and
 * never shows the password: not in its log at debug level, its process title, /metrics,
 * /readyz, /status or `weft leases --json`. /healthz and friends listen only when asked, where asked.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeLoopbackPort } from "../../src/lab/etcd-server.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { spawnDetached } from "../../src/process/detached.js";
import { terminatePids } from "../../src/process/pids.js";
import { makeTestPki, type TestPki } from "../support/certificates.js";
import { useEtcd, type EtcdFixture } from "../support/etcd.js";
import { TcpProxy } from "../support/tcp-proxy.js";

const execFileAsync = promisify(execFile);
const CONFIG = '{"Network":"10.199.0.0/16","Backend":{"Type":"alloc"}}';
const WINDOW_MS = 8000;
let dir: string;
let pki: TestPki;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "weft-etcdsecd-"));
  await chmod(dir, 0o755);
  pki = await makeTestPki(join(dir, "pki"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface RunningDaemon {
  pid: number;
  log: () => Promise<string>;
  subnetFile: string;
}

/** `weft run` in this namespace with its own state dir and subnet file, logging at debug level. */
async function startDaemon(name: string, flags: string[]): Promise<RunningDaemon> {
  const home = join(dir, name);
  await mkdir(home, { recursive: true });
  const logFile = join(home, "weft.log");
  const subnetFile = join(home, "subnet.env");
  const args = [weftCliPath(), "run", "--iface=lo", `--subnet-file=${subnetFile}`, `--state-dir=${join(home, "state")}`, "--iptables-forward-rules=false", "--log-level=debug", ...flags];
  const pid = spawnDetached(process.execPath, args, logFile);
  return { pid, log: () => readFile(logFile, "utf8").catch(() => ""), subnetFile };
}

/** User plus system CPU time of `pid` so far, in ms (/proc/<pid>/stat counts clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The TCP addresses `pid` listens on. */
async function listeningAddresses(pid: number): Promise<string[]> {
  const { stdout } = await execFileAsync("ss", ["-ltnpH"]);
  return stdout
    .split("\n")
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => line.trim().split(/\s+/)[3] ?? "?");
}

async function processTitle(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0+/g, " ").trim();
}

async function get(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return `${response.status} ${await response.text()}`;
}

function count(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

describe("weft run against an etcd that refuses its TLS certificate chain", () => {
  const etcd = useEtcd(() => ({ tls: pki }));

  it("keeps retrying without a hot loop, says which file to check, and comes in once the CA file is fixed", async () => {
    await etcd().newStore("/daemon-tls/network").put("/daemon-tls/network/config", CONFIG);
    const proxy = await TcpProxy.start(etcd().server.options.clientPort);
    const ca = join(dir, "daemon-ca.pem");
    await copyFile(pki.otherCa.cert, ca);
    const endpoint = `https://127.0.0.1:${proxy.port}`;
    const daemon = await startDaemon("tls", [
      `--etcd-endpoints=${endpoint}`,
      "--etcd-prefix=/daemon-tls/network",
      `--etcd-cafile=${ca}`,
      `--etcd-certfile=${pki.client.cert}`,
      `--etcd-keyfile=${pki.client.key}`,
    ]);
    try {
      const refused = `etcd ${endpoint}: get /daemon-tls/network/config: TLS handshake failed: etcd's certificate is signed by an unknown authority (check --etcd-cafile ${ca})`;
      await expect.poll(daemon.log, { timeout: 20_000, interval: 100 }).toContain(refused);
      const connectionsBefore = proxy.accepted;
      const cpuBefore = await cpuMs(daemon.pid);
      const logBefore = (await daemon.log()).length;
      await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
      const connections = proxy.accepted - connectionsBefore;
      const cpu = (await cpuMs(daemon.pid)) - cpuBefore;
      const windowLog = (await daemon.log()).slice(logBefore);
      console.log(`wrong CA, daemon over ${WINDOW_MS} ms: ${connections} TLS connections, ${cpu} ms CPU, ${count(windowLog, /cannot use the network config/)} error lines`);
      // The config loop asks every second; the refusal back-off (1, 2, 4, 8 s) keeps it off the network.
      expect(connections).toBeLessThanOrEqual(8);
      expect(cpu).toBeLessThan(800);
      // Said when it changes (and every 30 s): not once per attempt.
      expect(count(windowLog, /cannot use the network config/)).toBeLessThanOrEqual(1);
      // No health server unless asked for one.
      expect(await listeningAddresses(daemon.pid)).toEqual([]);
      // The operator puts the right CA in place: no restart needed.
      await copyFile(pki.ca.cert, ca);
      await expect.poll(() => existsSync(daemon.subnetFile), { timeout: 20_000, interval: 100 }).toBe(true);
      const log = await daemon.log();
      expect(log).toContain(`etcd ${endpoint}: TLS files changed; connecting with the new ones`);
      // Key material never in the log, not even at debug level.
      const keyLines = (await readFile(pki.client.key, "utf8")).split("\n").filter((line) => line.length > 20 && !line.startsWith("-----"));
      expect(keyLines.length).toBeGreaterThan(0);
      for (const line of keyLines) expect(log).not.toContain(line);
      expect(log).not.toContain("PRIVATE KEY");
    } finally {
      await terminatePids([daemon.pid]);
      await proxy.close();
    }
  }, 90_000);
});

describe("weft run against an etcd that refuses its password", () => {
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const rootPassword = `root-${randomBytes(8).toString("hex")}`;
  const etcd = useEtcd({ auth: { rootPassword, users: [{ name: "weft", password, prefix: "/weft-auth/" }] } });

  async function authenticateCalls(fixture: EtcdFixture): Promise<number> {
    const text = await (await fetch(`${fixture.server.endpoint}/metrics`)).text();
    return [...text.matchAll(/^grpc_server_started_total\{[^}]*grpc_method="Authenticate"[^}]*\} (\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
  }

  it("never shows the password anywhere, retries gently, listens only where told, and comes in once etcd has the password", async () => {
    await etcd().etcdctl(["put", "/weft-auth/network/config", CONFIG]);
    // What the operator typed: wrong for now, and the secret every check below looks for.
    const typed = `typed-${randomBytes(8).toString("hex")}`;
    const port = await freeLoopbackPort();
    const health = `http://127.0.0.1:${port}`;
    const endpoint = etcd().server.endpoint;
    const daemon = await startDaemon("auth", [
      `--etcd-endpoints=${endpoint}`,
      "--etcd-prefix=/weft-auth/network",
      "--etcd-username=weft",
      `--etcd-password=${typed}`,
      "--healthz-ip=127.0.0.1",
      `--healthz-port=${port}`,
    ]);
    try {
      const refused = `etcd ${endpoint}: get /weft-auth/network/config: authentication failed for user "weft": wrong --etcd-password, or no such user in etcd`;
      await expect.poll(daemon.log, { timeout: 20_000, interval: 100 }).toContain(refused);
      expect(await processTitle(daemon.pid)).toContain("--etcd-password=***");
      expect(await processTitle(daemon.pid)).not.toContain(typed);
      expect(await listeningAddresses(daemon.pid)).toEqual([`127.0.0.1:${port}`]);

      const before = await authenticateCalls(etcd());
      const cpuBefore = await cpuMs(daemon.pid);
      await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
      const attempts = (await authenticateCalls(etcd())) - before;
      const cpu = (await cpuMs(daemon.pid)) - cpuBefore;
      console.log(`wrong password, daemon over ${WINDOW_MS} ms: ${attempts} Authenticate calls at etcd, ${cpu} ms CPU`);
      expect(attempts).toBeGreaterThan(0);
      expect(attempts).toBeLessThanOrEqual(5);
      expect(cpu).toBeLessThan(800);

      const refusedPages = [await get(`${health}/readyz?verbose`), await get(`${health}/readyz?format=json`), await get(`${health}/metrics`), await get(`${health}/status`)];
      expect(refusedPages[0]).toContain(`authentication failed for user "weft"`);
      expect(refusedPages[2]).toMatch(/^200 [\s\S]*\nweft_etcd_errors_total [1-9]/);
      for (const page of refusedPages) expect(page).not.toContain(typed);

      // The operator sets that password in etcd: the daemon gets in at its next attempt.
      await etcd().etcdctl(["user", "passwd", "weft", "--interactive=false"], `${typed}\n`);
      await expect.poll(() => existsSync(daemon.subnetFile), { timeout: 40_000, interval: 200 }).toBe(true);
      const pages = [await get(`${health}/readyz?verbose`), await get(`${health}/readyz?format=json`), await get(`${health}/metrics`), await get(`${health}/status`), await get(`${health}/healthz`)];
      const leases = await execFileAsync(process.execPath, [weftCliPath(), "leases", "--json", `--etcd-endpoints=${endpoint}`, "--etcd-prefix=/weft-auth/network", "--etcd-username=weft", `--etcd-password=${typed}`]);
      expect(JSON.parse(leases.stdout)).toEqual([expect.objectContaining({ publicIP: "127.0.0.1", backendType: "alloc" })]);
      const log = await daemon.log();
      expect(log).toContain('"level":20'); // debug lines were written: the check below covers them
      expect(log).toContain(`--etcd-password goes in clear text to ${endpoint}`);
      for (const text of [...pages, leases.stdout, leases.stderr, log, await processTitle(daemon.pid)]) expect(text).not.toContain(typed);
    } finally {
      await terminatePids([daemon.pid]);
    }
  }, 110_000);
});
