/*
 * The issue's lab tests for the kernel backends, once per backend (vxlan, host-gw):
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13        <p>-inet .254
 *   real etcd       weft run          weft run          weft run          "the internet"
 *                   --ip-masq         --ip-masq         --ip-masq         (no route to 10.66/16)
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 *
 * Real daemons (dist/cli.js, build first), real etcd, real kernel devices; the doctor tests
 * pause h1's daemon (SIGSTOP), which would repair the drift at once on its kernel event.
 */
import { describe, expect, it } from "vitest";
import { sleep } from "../../src/async/sleep.js";
import { runCommand as run } from "../../src/process/run-command.js";
import { withDaemonPaused } from "../support/paused-daemon.js";
import { doctorOn, useLab } from "../support/lab.js";

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await probe()) return performance.now() - started;
    await sleep(20);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

describe.each(["vxlan", "host-gw"])("kernel backend %s in a 3-host lab", (backend) => {
  const lab = useLab(backend === "vxlan" ? "wlv" : "wlh", {
    hosts: 3, containersPerHost: 1, backend, internet: true, ipMasq: true,
    daemonArgs: ["--reconcile-interval=30"],
  });
  const subnet = (host: string) => lab().host(host).state.subnet as string;
  const container = (host: string) => lab().container(`${host}c1`);
  const ping = async (from: string, to: string) =>
    (await container(from).exec("ping", ["-c", "1", "-W", "1", container(to).address as string], { allowFailure: true })).exitCode === 0;
  /** Echo requests the container's namespace has received (Icmp InEchos in /proc/net/snmp). */
  const echoesReceived = async (host: string) => {
    const [names, values] = (await container(host).exec("cat", ["/proc/net/snmp"])).stdout
      .split("\n")
      .filter((line) => line.startsWith("Icmp:"))
      .map((line) => line.trim().split(/\s+/));
    return Number(values?.[names?.indexOf("InEchos") ?? -1] ?? Number.NaN);
  };
  /** Whether a UDP socket is bound to `port` in the namespace (/proc/net/udp, ports in hex). */
  const udpBound = async (namespace: string, port: number) => {
    const table = (await run("ip", ["netns", "exec", namespace, "cat", "/proc/net/udp"])).stdout;
    return table.includes(`:${port.toString(16).toUpperCase().padStart(4, "0")} `);
  };
  const hasRoute = async (host: string, destination: string) =>
    (await lab().host(host).exec("ip", ["route", "show", destination])).stdout.trim() !== "";
  const doctor = (host: string, extra: string[] = [], iface?: string) => doctorOn(lab(), host, extra, iface);

  it("full ping matrix and a max-size don't-fragment ping pass", async () => {
    const { ok, table, results } = await lab().checkTable();
    console.log(`${backend} lab up in ${lab().timings?.total} ms\n${table}`);
    expect(results.filter((result) => result.kind === "df").length).toBeGreaterThan(0);
    expect(ok).toBe(true);
  });

  it("masquerade: a container reaches the internet with its host's address", async () => {
    const internet = lab().state.internet?.address as string;
    const listener = run("ip", ["netns", "exec", lab().namespaceOf("inet"), process.execPath, "-e", `
      const s = require("node:dgram").createSocket("udp4");
      s.on("message", (m, r) => { console.log(r.address); process.exit(0); });
      s.bind(9999, ${JSON.stringify(internet)});
      setTimeout(() => process.exit(3), 4000);`], { allowFailure: true });
    await until("the internet host's listener bound", 4000, () => udpBound(lab().namespaceOf("inet"), 9999));
    await container("h1").exec(process.execPath, ["-e", `
      const s = require("node:dgram").createSocket("udp4");
      s.send("x", 9999, ${JSON.stringify(internet)}, () => s.close());`]);
    const seen = await listener;
    expect(seen.stdout.trim()).toBe(lab().host("h1").underlayAddress);
    expect((await container("h1").exec("ping", ["-c", "1", "-W", "1", internet], { allowFailure: true })).exitCode).toBe(0);
  });

  it("doctor finds a deleted route and --repair puts it back", async () => {
    await withDaemonPaused(lab().host("h1").state.daemonPid, async () => {
      await lab().host("h1").exec("ip", ["route", "del", subnet("h2")]);
      expect(await ping("h1", "h2")).toBe(false);
      const found = await doctor("h1");
      expect(found.exitCode, found.stderr).toBe(3);
      expect(found.stdout).toContain(`add route ${subnet("h2")} via`);
      const repaired = await doctor("h1", ["--repair"]);
      expect(repaired.exitCode, repaired.stderr).toBe(0);
      expect(repaired.stdout).toContain("repaired");
      expect(await ping("h1", "h2")).toBe(true);
      const clean = await doctor("h1");
      expect(clean.stdout).toContain("in sync");
    });
  });

  it("doctor finds this host's lease by PublicIP when the subnet file names another host's", async () => {
    const result = await doctor("h1", [`--subnet-file=${lab().host("h2").state.subnetFile}`]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`own subnet ${subnet("h1")}`);
  });

  it.runIf(backend === "vxlan")("doctor --repair with the wrong --iface refuses to recreate flannel.1 (that needs --force) and changes nothing", async () => {
    const mac = async () => (await lab().host("h1").exec("cat", [`/sys/class/net/flannel.1/address`])).stdout.trim();
    const before = await mac();
    // --iface is repeatable (first match wins), so the daemon's must not be passed as well.
    const wrong = [`--public-ip=${lab().host("h1").underlayAddress}`];
    const found = await doctor("h1", wrong, "docker0");
    expect(found.exitCode, found.stderr).toBe(3);
    expect(found.stdout).toMatch(/recreate device flannel\.1: its local address is/);
    const refused = await doctor("h1", [...wrong, "--repair"], "docker0");
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/--repair would change the device itself: recreate device flannel\.1.*add --force/);
    expect(await mac()).toBe(before);
    expect(await ping("h1", "h2")).toBe(true);
  });

  it("restarting a daemon does not interrupt traffic (kernel state stays)", async () => {
    const echoesBefore = await echoesReceived("h2");
    const pinging = container("h1").exec("ping", ["-c", "60", "-i", "0.05", "-W", "1", container("h2").address as string], { allowFailure: true });
    // Restart only once traffic flows: the first echoes have reached h2c1.
    await until("h1c1's pings reach h2c1", 3000, async () => (await echoesReceived("h2")) >= echoesBefore + 3);
    await lab().stopDaemon("h2");
    await lab().startDaemon("h2");
    const result = await pinging;
    expect(result.stdout).toMatch(/60 packets transmitted, 60 received/);
  });

  it("a removed lease takes its kernel state within 1 s; a host joining is reachable within 1 s of its lease", async () => {
    const gone = subnet("h3");
    await lab().stopDaemon("h3");
    const key = `/coreos.com/network/subnets/${gone.replace("/", "-")}`;
    await lab().etcdctl(["del", key]);
    const removedMs = await until("h3's route removed on h1 and h2", 3000, async () => !(await hasRoute("h1", gone)) && !(await hasRoute("h2", gone)));
    console.log(`${backend}: removed lease cleaned up on both peers in ${removedMs.toFixed(0)} ms`);
    expect(removedMs).toBeLessThan(1000);
    if (backend === "vxlan") {
      const neigh = await lab().host("h1").exec("ip", ["neigh", "show", "dev", "flannel.1", gone.split("/")[0] as string]);
      expect(neigh.stdout.trim()).toBe("");
      const fdb = await lab().host("h1").exec("bridge", ["fdb", "show", "dev", "flannel.1"]);
      expect(fdb.stdout).not.toContain(`dst ${lab().host("h3").underlayAddress}`);
    }

    // Join: note when the lease appears in etcd, then when h1's container reaches h3's.
    let appearedAt: number | undefined;
    const watching = (async () => {
      while (appearedAt === undefined) {
        const got = await lab().etcdctl(["get", "--prefix", "--keys-only", "/coreos.com/network/subnets/"]);
        const count = got.stdout.split("\n").filter((line) => line.includes("/subnets/")).length;
        if (count === 3) appearedAt = performance.now();
        else await sleep(10);
      }
    })();
    const starting = lab().startDaemon("h3");
    await watching;
    // Polled from the moment the lease appeared: the route on h1 (vxlan programs neigh and FDB before it).
    const routeMs = await until("h1 has h3's route", 3000, () => hasRoute("h1", gone));
    console.log(`${backend}: joining host's route on h1 ${routeMs.toFixed(0)} ms after its lease appeared`);
    expect(routeMs).toBeLessThan(1000);
    await starting;
    await until("h1c1 reaches h3c1", 3000, () => ping("h1", "h3"));
  });
});
