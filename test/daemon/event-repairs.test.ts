/*
 * Repairs on kernel and nftables events, and an idle daemon that runs no commands (issue 10):
 *
 *                    <p>-ul  bridge, 192.168.77.0/24 (+ fd77::/64 for vxlan)
 *         +-----------------+--------------------------+
 *    <p>-etcd .2       <p>-h1 .11                  <p>-h2 .12
 *    real etcd         weft run in its own PID     weft run (the peer)
 *                      namespace (unshare), so
 *                      ns_last_pid counts every
 *                      process it starts
 *
 * Both daemons run with --reconcile-interval and --iptables-resync at an hour, so only an event
 * can have repaired what a test deletes within the second it allows. Real daemons (dist/cli.js,
 * build first), real etcd, real kernel devices and nftables.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { daemonArgs, waitDaemonReady, weftCliPath } from "../../src/lab/lab-daemon.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { runCommand } from "../../src/process/run-command.js";
import { sleep } from "../../src/async/sleep.js";
import { useLab } from "../support/lab.js";

const HOUR = ["--reconcile-interval=3600", "--iptables-resync=3600"];
/** What "at once" means here: the 150 ms debounce, a reconcile's reads and writes, and a loaded machine. */
const REPAIR_WITHIN_MS = 1500;

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await probe()) return Math.round(performance.now() - started);
    await sleep(25);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

async function childPids(pid: number): Promise<number[]> {
  const { stdout } = await runCommand("sh", ["-c", `cat /proc/${pid}/task/*/children`], { allowFailure: true });
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

async function commandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ").trim();
}

describe.each([
  { backend: "vxlan", ipv6: true },
  { backend: "host-gw", ipv6: false },
])("a $backend daemon repairs on events", ({ backend, ipv6 }) => {
  const lab = useLab(backend === "vxlan" ? "wev" : "weh", { hosts: 2, containersPerHost: 0, backend, ipv6, internet: false, ipMasq: true, deferredHosts: ["h1"], daemonArgs: HOUR });
  /** h1's daemon: its host PID (the node process under unshare). */
  let daemonPid: number;
  const h1 = (command: string, args: string[]) => lab().host("h1").exec(command, args, { allowFailure: true });
  const peerSubnet = () => lab().host("h2").state.subnet as string;
  /** What weft keeps on h1 for its peer and itself, as the kernel lists it. */
  const kernelState = async () => {
    const lists = [
      ["ip", ["-4", "route", "show", peerSubnet()]],
      ["ip", ["neigh", "show", "nud", "permanent"]],
      ["nft", ["list", "table", "ip", "weft"]],
    ] as [string, string[]][];
    // Brief address lines: no interface index, which a recreated flannel.1 changes.
    if (backend === "vxlan") lists.push(["bridge", ["fdb", "show", "dev", "flannel.1"]], ["ip", ["-4", "-br", "addr", "show", "dev", "flannel.1"]], ["ip", ["-6", "route", "show", "dev", "flannel-v6.1"]]);
    const outputs = await Promise.all(lists.map(([command, args]) => h1(command, args).then((result) => `${result.exitCode}\n${result.stdout}`)));
    return outputs.join("---\n");
  };
  /**
   * Processes h1's daemon has started since the last call: its PID namespace's ns_last_pid,
   * read by a `cat` inside that namespace (which takes one PID itself).
   */
  let lastPid: number | undefined;
  const processesStarted = async () => {
    const { stdout } = await runCommand("nsenter", [`--target=${daemonPid}`, "--pid", "--", "cat", "/proc/sys/kernel/ns_last_pid"]);
    const now = Number(stdout.trim());
    const started = lastPid === undefined ? 0 : now - lastPid - 1;
    lastPid = now;
    return started;
  };
  let baseline: string;

  const repairedAfter = async (what: string, ...commands: [string, string[]][]) => {
    // Each command must succeed (a `del` of what exists); the state is not compared before the
    // repair, which may come before a listing would.
    for (const [command, args] of commands) {
      const result = await h1(command, args);
      expect(result.exitCode, `${what}: ${command} ${args.join(" ")}: ${result.stderr}`).toBe(0);
    }
    const ms = await until(`${what} repaired`, REPAIR_WITHIN_MS, async () => (await kernelState()) === baseline);
    console.log(`${backend}: ${what} repaired in ${ms} ms`);
  };

  beforeAll(async () => {
    const host = lab().host("h1").state;
    host.daemonLogOffset = 0;
    const unsharePid = spawnDetachedInNamespace(host.namespace, "unshare", ["--pid", "--fork", "--kill-child", process.execPath, weftCliPath(), ...daemonArgs(lab().state, host, HOUR)], host.logFile);
    await until("the daemon under unshare", 5000, async () => (await childPids(unsharePid)).length > 0);
    daemonPid = (await childPids(unsharePid))[0] as number;
    host.daemonPid = daemonPid;
    await waitDaemonReady(host);
    // The peer's state is programmed and the first passes after the monitors started are done.
    await until("h1 programs its peer", 10_000, async () => (await h1("ip", ["route", "show", peerSubnet()])).stdout.trim() !== "");
    await sleep(1000);
    baseline = await kernelState();
  }, 90_000);

  it("keeps two monitors running and starts no process while idle", async () => {
    const children = await Promise.all((await childPids(daemonPid)).map(commandLine));
    expect(children).toContain("ip -o monitor label link address route neigh");
    expect(children).toContain("nft -j monitor ruleset");
    await processesStarted();
    await sleep(15_000);
    expect(await processesStarted()).toBe(0);
  }, 30_000);

  it("puts back a deleted route at once (and the process count sees the pass's commands)", async () => {
    await processesStarted();
    await repairedAfter("deleted peer route", ["ip", ["route", "del", peerSubnet()]]);
    expect(await processesStarted()).toBeGreaterThan(0);
  });

  it.runIf(backend === "vxlan")("puts back a deleted neighbour, FDB entry, own address and IPv6 route at once", async () => {
    const neighbour = peerSubnet().split("/")[0] as string;
    await repairedAfter("deleted neighbour", ["ip", ["neigh", "del", neighbour, "dev", "flannel.1"]]);
    const fdb = (await h1("bridge", ["fdb", "show", "dev", "flannel.1"])).stdout.split("\n").find((line) => line.includes(" dst "));
    const [, mac, destination] = /^(\S+) .*\bdst (\S+)/.exec(fdb ?? "") ?? [];
    await repairedAfter("deleted FDB entry", ["bridge", ["fdb", "del", mac as string, "dev", "flannel.1", "dst", destination as string, "self"]]);
    const address = (await h1("ip", ["-4", "-o", "addr", "show", "dev", "flannel.1"])).stdout.split(/\s+/)[3] as string;
    await repairedAfter("deleted own address", ["ip", ["addr", "del", address, "dev", "flannel.1"]]);
    const v6Route = (await h1("ip", ["-6", "route", "show", "dev", "flannel-v6.1"])).stdout.split("\n").find((line) => line.includes(" via "));
    await repairedAfter("deleted IPv6 peer route", ["ip", ["-6", "route", "del", (v6Route ?? "").split(" ")[0] as string, "dev", "flannel-v6.1"]]);
  });

  it.runIf(backend === "vxlan")("recreates a deleted flannel.1 with its peer state at once", async () => {
    await repairedAfter("deleted flannel.1", ["ip", ["link", "del", "flannel.1"]]);
  });

  it.runIf(backend === "host-gw")("puts back the routes an underlay flap flushed (no route event for them)", async () => {
    const underlay = lab().host("h1").state.underlayDevice;
    await repairedAfter("underlay down and up", ["ip", ["link", "set", underlay, "down"]], ["ip", ["link", "set", underlay, "up"]]);
  });

  it("re-installs a deleted weft table and a flushed FORWARD chain at once", async () => {
    await repairedAfter("deleted table ip weft", ["nft", ["delete", "table", "ip", "weft"]]);
    // FORWARD dropping (as Docker sets it): WEFT-FWD goes in front on the policy change's event.
    await h1("iptables-nft", ["-P", "FORWARD", "DROP"]);
    const jumped = async () => (await h1("iptables-nft", ["-S", "FORWARD"])).stdout.includes("-j WEFT-FWD");
    console.log(`${backend}: WEFT-FWD hooked in ${await until("WEFT-FWD after FORWARD DROP", REPAIR_WITHIN_MS, jumped)} ms`);
    await h1("iptables-nft", ["-F", "FORWARD"]);
    expect(await jumped()).toBe(false);
    console.log(`${backend}: flushed FORWARD repaired in ${await until("WEFT-FWD after iptables -F FORWARD", REPAIR_WITHIN_MS, jumped)} ms`);
    await h1("iptables-nft", ["-P", "FORWARD", "ACCEPT"]);
  });

  it("restarts a killed monitor and repairs on its events again", async () => {
    const monitorPid = async () => {
      for (const pid of await childPids(daemonPid)) if ((await commandLine(pid)).startsWith("ip -o monitor")) return pid;
      return undefined;
    };
    const killed = await monitorPid();
    expect(killed).toBeDefined();
    process.kill(killed as number, "SIGKILL");
    await until("a new ip monitor", 5000, async () => {
      const pid = await monitorPid();
      return pid !== undefined && pid !== killed;
    });
    const log = await readFile(lab().host("h1").state.logFile, "utf8");
    expect(log).toMatch(/kernel events \(ip monitor\): ip was killed \(SIGKILL\); polling instead until it runs again/);
    await sleep(300); // the catch-up pass after the restart
    await repairedAfter("deleted peer route after a monitor restart", ["ip", ["route", "del", peerSubnet()]]);
  });

  it("is idle again after the repairs (their echo ends the chain)", async () => {
    await sleep(1000);
    await processesStarted();
    await sleep(8000);
    expect(await processesStarted()).toBe(0);
    expect(await kernelState()).toBe(baseline);
  }, 20_000);
});
