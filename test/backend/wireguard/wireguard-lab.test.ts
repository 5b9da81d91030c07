/*
 * The wireguard backend in the 3-host lab, weft on every host: `"Backend": {"Type": "wireguard"}`,
 * each host with its own key file (the lab sets WIREGUARD_KEY_FILE to <state-dir>/wgkey).
 * Then an operator's key rotation on h2: stop, new key file, start; its lease carries the new
 * PublicKey and the others follow.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          weft run
 *                   flannel-wg (TUN, userspace WireGuard, udp/51820), MTU 1420
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../../src/lab/readiness.js";
import { useLab } from "../../support/lab.js";

describe("wireguard backend in a 3-host weft lab", () => {
  const lab = useLab("wgl", { hosts: 3, containersPerHost: 1, backend: "wireguard" });
  const keyFile = (host: string) => join(lab().host(host).state.stateDir, "wgkey");
  const leaseOf = async (host: string): Promise<{ BackendType: string; BackendData: { PublicKey: string; Port: number } }> => {
    const listed = await lab().etcdctl(["get", "--prefix", "/coreos.com/network/subnets/"]);
    const values = listed.stdout.trim().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
    const lease = values.find((value) => value.PublicIP === lab().host(host).underlayAddress);
    if (!lease) throw new Error(`no lease of ${host} in etcd:\n${listed.stdout}`);
    return lease;
  };

  it("leases carry flanneld's BackendData and the device is flannel-wg at MTU 1420", async () => {
    const lease = await leaseOf("h1");
    expect(lease.BackendType).toBe("wireguard");
    expect(Object.keys(lease.BackendData)).toEqual(["PublicKey", "Port"]);
    expect(lease.BackendData.Port).toBe(51820);
    expect(Buffer.from(lease.BackendData.PublicKey, "base64")).toHaveLength(32);
    const link = (await lab().host("h1").exec("ip", ["-o", "link", "show", "flannel-wg"])).stdout;
    expect(link).toContain("mtu 1420");
    const env = await readFile(lab().host("h1").state.subnetFile, "utf8");
    expect(env).toContain("FLANNEL_MTU=1420");
  });

  it("passes lab check: ping matrix and max-size don't-fragment pings", async () => {
    const { ok, table } = await lab().checkTable();
    console.log(`wireguard lab\n${table}`);
    expect(ok).toBe(true);
  });

  it("exports which data path runs and its handshakes on /metrics", async () => {
    const metrics = (await lab().host("h1").exec(process.execPath, ["-e",
      `fetch("http://127.0.0.1:${lab().host("h1").state.healthzPort}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`])).stdout;
    expect(metrics).toMatch(/^weft_wireguard_implementation\{implementation="userspace"\} 1$/m);
    expect(metrics).toMatch(/^weft_build_info\{version="[^"]+",backend="wireguard",engine="userspace"\} 1$/m);
    expect(Number(/^weft_wireguard_handshakes_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^weft_wireguard_peers\{state="handshaken"\} 2$/m);
    const key = (await readFile(keyFile("h1"), "utf8")).trim();
    expect(metrics).not.toContain(key);
  });

  it("never writes a private key into a log", async () => {
    for (const host of ["h1", "h2", "h3"]) {
      const key = (await readFile(keyFile(host), "utf8")).trim();
      for (const other of ["h1", "h2", "h3"]) expect(await readFile(lab().host(other).state.logFile, "utf8")).not.toContain(key);
    }
  });

  it("follows an operator's key rotation on h2 (new key file, restart)", async () => {
    const before = (await leaseOf("h2")).BackendData.PublicKey;
    await lab().stopDaemon("h2");
    await rm(keyFile("h2"), { force: true });
    await lab().startDaemon("h2");
    const after = (await leaseOf("h2")).BackendData.PublicKey;
    expect(after).not.toBe(before);
    // h1 and h3 see the lease change and handshake with the new key on the next packet.
    await waitUntil("the mesh carrying traffic with h2's new key", async () => (await lab().checkTable()).ok, { timeoutMs: 20_000, intervalMs: 500 });
    const { ok, table } = await lab().checkTable();
    expect(ok, table).toBe(true);
  }, 60_000);
});
