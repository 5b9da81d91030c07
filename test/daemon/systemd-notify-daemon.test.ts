/*
 * weft run as systemd runs a Type=notify service, with a real sd_notify receiver instead of PID 1:
 *
 *   root ns:  python3 receiver, /tmp/wtsd-XXXXXX/notify.sock (SO_PASSCRED: the sender's PID)
 *                  ^  sendto() by path (a path socket is reachable from any network namespace)
 *                  |
 *            <lab>-ul  bridge ul0, 192.168.77.0/24
 *      +-----------+
 *   <lab>-etcd  <lab>-h1
 *   etcd :2379  weft run (alloc), NOTIFY_SOCKET=…, WATCHDOG_USEC=400000 (WATCHDOG=1 every 200 ms)
 *
 * The daemon starts while etcd is down and its network config is missing, so "not ready" lasts
 * as long as the test wants: READY=1 must not come before /readyz is ready, and comes once the
 * config is written. Then SIGHUP (logged, ignored) and SIGTERM (STOPPING=1, exit 0).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemonArgs, probeReadyz, weftCliPath } from "../../src/lab/lab-daemon.js";
import { isAlive, terminatePids } from "../../src/process/pids.js";
import { commandLineIn } from "../../src/process/run-command.js";
import { NotifyReceiver } from "../support/notify-receiver.js";
import { useLab } from "../support/lab.js";

const PREFIX = "/coreos.com/network";
const lab = useLab("wsd", { hosts: 1, containersPerHost: 0, backend: "alloc", daemons: "none" });
let dir: string;
let receiver: NotifyReceiver;
let daemon: ChildProcess;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let logFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wtsd-"));
  logFile = join(dir, "weft.log");
  receiver = await NotifyReceiver.start(join(dir, "notify.sock"));
});
afterAll(async () => {
  if (daemon?.pid !== undefined) await terminatePids([daemon.pid], 5000);
  receiver?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const log = () => readFile(logFile, "utf8");
const host = () => lab().host("h1").state;

describe("weft run under a systemd notify socket", () => {
  it("starting while etcd is down: keeps retrying, no READY=1, STATUS says why, WATCHDOG=1 from its own PID", async () => {
    await lab().stopEtcd();
    const fd = openSync(logFile, "a");
    const [file, argv] = commandLineIn(host().namespace, process.execPath, [weftCliPath(), ...daemonArgs(lab().state, host())]);
    // JOURNAL_STREAM names no stream of ours: the log stays plain JSON (the tests read it as such).
    const env = { ...process.env, NOTIFY_SOCKET: join(dir, "notify.sock"), WATCHDOG_USEC: "400000", JOURNAL_STREAM: "0:0" };
    daemon = spawn(file, argv, { stdio: ["ignore", fd, fd], env });
    closeSync(fd);
    exited = new Promise((resolve) => daemon.once("exit", (code, signal) => resolve({ code, signal })));
    const pid = daemon.pid!;

    await expect.poll(() => receiver.with("STATUS").map((m) => m.fields.STATUS).join("\n"), { timeout: 20_000 }).toMatch(/cannot use the network config at \/coreos\.com\/network\/config, retrying: etcd/);
    await expect.poll(() => receiver.with("WATCHDOG").length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    expect(receiver.messages.every((message) => message.pid === pid)).toBe(true);
    // The first message is a watchdog ping: systemd's watchdog runs from the process's start.
    expect(receiver.messages[0]?.fields).toEqual({ WATCHDOG: "1" });
    expect(receiver.with("READY")).toEqual([]);
    expect(await probeReadyz(host())).toBe(false);
    expect(isAlive(pid)).toBe(true);
    // The addon (for sendto) is loaded because NOTIFY_SOCKET was set; without it, alloc and kernel backends never load it.
    expect(await readFile(`/proc/${pid}/maps`, "utf8")).toContain("weft_engine.node");
  });

  it("with etcd back but no network config: still not ready, and STATUS says what to write", async () => {
    await lab().startEtcd();
    await expect.poll(() => receiver.with("STATUS").at(-1)?.fields.STATUS, { timeout: 20_000 }).toBe(`waiting for the network config at ${PREFIX}/config ("weft config set")`);
    expect(receiver.with("READY")).toEqual([]);
    expect(await probeReadyz(host())).toBe(false);
  });

  it("sends READY=1 once the config is written, after /readyz turned ready and 'weft is ready' was logged", async () => {
    const written = Date.now();
    await lab().etcdctl(["put", `${PREFIX}/config`, JSON.stringify({ Network: "10.66.0.0/16", Backend: { Type: "alloc" } })]);
    await expect.poll(() => receiver.with("READY").length, { timeout: 20_000 }).toBe(1);
    const ready = receiver.with("READY")[0]!;
    expect(ready.at).toBeGreaterThanOrEqual(written);
    expect(ready.fields).toEqual({ READY: "1", STATUS: expect.stringMatching(/^ready: subnet 10\.66\.\d+\.0\/24, backend alloc, 0 peer\(s\)$/) as unknown as string });
    expect(await probeReadyz(host())).toBe(true);
    expect(await log()).toMatch(/"msg":"weft is ready"/);
    expect(ready.pid).toBe(daemon.pid);
  });

  it("logs SIGHUP and keeps running", async () => {
    process.kill(daemon.pid!, "SIGHUP");
    await expect.poll(log, { timeout: 5000 }).toMatch(/"level":30,.*"signal":"SIGHUP".*"msg":"SIGHUP: ignored \(/);
    expect(isAlive(daemon.pid!)).toBe(true);
    expect(await probeReadyz(host())).toBe(true);
  });

  it("sends STOPPING=1 on SIGTERM and exits 0", async () => {
    const before = receiver.messages.length;
    process.kill(daemon.pid!, "SIGTERM");
    expect(await exited).toEqual({ code: 0, signal: null });
    const stopping = receiver.messages.slice(before).filter((message) => "STOPPING" in message.fields);
    expect(stopping.map((message) => message.fields)).toEqual([{ STOPPING: "1", STATUS: "stopping; the lease and kernel state are kept for the next start" }]);
    expect(await log()).toMatch(/"msg":"stopped"/);
    expect(receiver.with("READY")).toHaveLength(1);
  });
});
