/*
 * Userspace vxlan in the 3-host lab, in a mixed cluster: h1 and h2 run
 * `"Backend": {"Type": "vxlan", "Userspace": true}` (TUN weft.1 + engine), h3 joins later
 * with the plain kernel vxlan backend (flannel.1). Same leases, same wire format.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          weft run (started last)
 *                   weft.1 (TUN)      weft.1 (TUN)      flannel.1 (kernel vxlan)
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 */
import { beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../../src/lab/readiness.js";
import { verifiedTransfer } from "../support/tcp-transfer.js";
import { fewestPeers } from "../support/lab-metrics.js";
import { useLab } from "../support/lab.js";

describe("userspace vxlan in a mixed 3-host lab", () => {
  const lab = useLab("wlx", {
    hosts: 3, containersPerHost: 1,
    networkConfig: { Network: "10.66.0.0/16", Backend: { Type: "vxlan", Userspace: true } },
    deferredHosts: ["h3"],
  });
  const container = (host: string) => lab().container(`${host}c1`);
  /** The fewest peers any weft_peers series of the host's /metrics counts (the daemon's and its backend's). */
  const peers = (host: string): Promise<number> => fewestPeers(lab().host(host));

  beforeAll(async () => {
    // Daemons read the config once at start: h3 comes up with the kernel backend.
    await lab().etcdctl(["put", "/coreos.com/network/config", JSON.stringify({ Network: "10.66.0.0/16", Backend: { Type: "vxlan" } })]);
    await lab().startDaemon("h3");
  });

  it("each host has the data path it was configured with", async () => {
    const links = async (host: string) => (await lab().host(host).exec("ip", ["-br", "link"])).stdout;
    expect(await links("h1")).toMatch(/^weft\.1\s/m);
    expect(await links("h3")).toMatch(/^flannel\.1\s/m);
    const env = await lab().host("h1").exec("cat", [lab().host("h1").state.subnetFile]);
    expect(env.stdout).toContain("FLANNEL_MTU=1450");
  });

  it("full ping matrix and max-size don't-fragment pings pass between userspace and kernel vxlan hosts", async () => {
    // h3 joined last: wait until h1 and h2 have it as a peer (every weft_peers series counts 2).
    for (const host of ["h1", "h2"]) await waitUntil(`${host} programming h3 as a peer`, async () => (await peers(host)) >= 2);
    const { ok, table } = await lab().checkTable();
    console.log(`mixed vxlan lab\n${table}`);
    expect(ok).toBe(true);
  });

  it.each([["h1", "h3"], ["h3", "h2"], ["h1", "h2"]])("moves 16 MB intact from %sc1 to %sc1", async (from, to) => {
    const { sent, received } = await verifiedTransfer(container(from).namespace, container(to).namespace, container(to).address as string);
    expect(received).toBe(sent);
  });
});
