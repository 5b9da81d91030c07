/*
 *                     <p>-ul  bridge ul0, 192.168.77.0/24
 *        +--------------+---------------+
 *   <p>-etcd .2     <p>-h1 .11       <p>-h2 .12
 *   real etcd       weft run         weft run, started late
 *                   (alloc)          (deferredHosts: ["h2"])
 *                   docker0          docker0
 *                     |                |
 *                  <p>-h1c1         <p>-h2c1
 *
 * The daemon-lifecycle API other tests build on: a deferred host joins later, a stopped
 * daemon is gone by PID, a restarted daemon keeps its subnet (subnet.env's previous subnet).
 * Uses alloc (no data path); needs a build (npm run build:ts).
 */
import { describe, expect, it } from "vitest";
import { appendFile } from "node:fs/promises";
import { isAlive } from "../../src/process/pids.js";
import { useLab } from "../support/lab.js";

const lab = useLab("wld", { hosts: 2, containersPerHost: 1, backend: "alloc", deferredHosts: ["h2"] });

async function leaseCount(): Promise<number> {
  const result = await lab().etcdctl(["get", "--prefix", "--keys-only", "/coreos.com/network/subnets/"]);
  return result.stdout.split("\n").filter((line) => line.trim().length > 0).length;
}

describe("lab daemon lifecycle", () => {
  it("leaves a deferred host without daemon, lease or container address", async () => {
    expect(lab().host("h1").state.daemonPid).toBeGreaterThan(1);
    expect(lab().host("h2").state.daemonPid).toBeUndefined();
    expect(lab().container("h2c1").address).toBeUndefined();
    expect(await leaseCount()).toBe(1);
  });

  it("startDaemon brings the deferred host in: lease, subnet.env, docker0, container address", async () => {
    await lab().startDaemon("h2");
    expect(await leaseCount()).toBe(2);
    expect(lab().host("h2").state.subnet).toMatch(/^10\.66\.\d+\.0\/24$/);
    expect(lab().host("h2").state.subnet).not.toBe(lab().host("h1").state.subnet);
    const address = lab().container("h2c1").address as string;
    const ping = await lab().container("h2c1").exec("ping", ["-c", "1", "-W", "1", (lab().host("h2").state.bridgeAddress as string).split("/")[0] as string]);
    expect(ping.stdout).toMatch(/1 received/);
    expect(address).toMatch(/^10\.66\.\d+\.2$/);
  });

  it("stopDaemon stops the process by PID; a restart keeps the subnet and the container address", async () => {
    const host = lab().host("h1");
    const pid = host.state.daemonPid as number;
    const subnet = host.state.subnet;
    const address = lab().container("h1c1").address;
    await lab().stopDaemon("h1");
    expect(isAlive(pid)).toBe(false);
    expect(host.state.daemonPid).toBeUndefined();

    await lab().startDaemon("h1");
    expect(host.state.daemonPid).not.toBe(pid);
    expect(host.state.subnet).toBe(subnet);
    expect(lab().container("h1c1").address).toBe(address);
  });

  it("a fatal line an earlier run left in the (appended) log does not fail the next start", async () => {
    await lab().stopDaemon("h1");
    await appendFile(lab().host("h1").state.logFile, "weft: a failure of an earlier run\n");
    await lab().startDaemon("h1");
    expect(isAlive(lab().host("h1").state.daemonPid as number)).toBe(true);
  });

  it("refuses to start a second daemon on a host whose daemon runs", async () => {
    await expect(lab().startDaemon("h1")).rejects.toThrow(/already running/);
  });
});
