/*
 *                          <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+---------------+---------------+----------------+
 *   <p>-etcd .2      <p>-h1 .11      <p>-h2 .12      <p>-h3 .13      <p>-inet .254
 *   real etcd        weft run        weft run        weft run        HTTP server that
 *                    --ip-masq       --ip-masq       --ip-masq       answers with the
 *                    docker0         docker0         docker0         caller's address
 *                     |     |         |     |         |     |
 *                   h1c1  h1c2      h2c1  h2c2      h3c1  h3c2
 *
 * For each kernel backend (vxlan, host-gw): the full ping matrix and the max-size
 * don't-fragment pings pass, one byte more does not fit, and a container reaches the
 * "internet" (which has no route to the Network) masqueraded to its host's underlay address.
 * Needs a build (npm run build:ts): the daemons run dist/cli.js.
 */
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { waitForListener } from "../../src/lab/readiness.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { useLab } from "../support/lab.js";

const cases = [
  { backend: "vxlan", mtu: 1450 },
  { backend: "host-gw", mtu: 1500 },
];

describe.each(cases)("lab with the $backend backend", ({ backend, mtu }) => {
  const lab = useLab("wlb", { hosts: 3, containersPerHost: 2, backend, internet: true, ipMasq: true });

  it(`writes FLANNEL_MTU=${mtu} and builds docker0 and the containers with it`, async () => {
    for (const host of lab().hosts) {
      expect(await readFile(host.state.subnetFile, "utf8")).toContain(`FLANNEL_MTU=${mtu}\n`);
      expect(host.state.mtu).toBe(mtu);
    }
    const link = await lab().container("h2c1").exec("cat", ["/sys/class/net/eth0/mtu"]);
    expect(link.stdout.trim()).toBe(String(mtu));
  });

  it("passes every container-to-container ping and the max-size don't-fragment pings", async () => {
    const { ok, results, table } = await lab().checkTable();
    expect(table).toMatch(/all 33 checks passed/);
    expect(ok).toBe(true);
    const df = results.filter((result) => result.kind === "df");
    expect(df).toHaveLength(3);
    for (const result of df) expect(result.payload).toBe(mtu - 28);
  });

  it("refuses a don't-fragment ping one byte larger than the MTU allows", async () => {
    const target = lab().container("h3c1").address as string;
    const tooBig = await lab().container("h1c1").exec("ping", ["-n", "-c", "1", "-W", "1", "-M", "do", "-s", String(mtu - 27), target], { allowFailure: true });
    expect(tooBig.exitCode).not.toBe(0);
    expect(tooBig.stdout + tooBig.stderr).toMatch(/message too long|mtu/i);
  });

  it("masquerades traffic to the internet namespace to the host's underlay address", async () => {
    const internet = lab().state.internet as { namespace: string; address: string };
    const server = "require('http').createServer((q,s)=>s.end(q.socket.remoteAddress)).listen(8080,process.argv[1])";
    spawnDetachedInNamespace(internet.namespace, process.execPath, ["-e", server, internet.address], join(lab.labDir, "inet-http.log"));
    const client = `fetch('http://${internet.address}:8080/',{signal:AbortSignal.timeout(1000)}).then(r=>r.text()).then(t=>console.log(t))`;
    await waitForListener(internet.namespace, "tcp", 8080);
    const result = await lab().container("h2c2").exec(process.execPath, ["-e", client], { allowFailure: true });
    const seen = result.exitCode === 0 ? result.stdout.trim() : "";
    expect(seen).toBe(lab().host("h2").underlayAddress);
  });
});
