/*
 * IPv6-only networks (EnableIPv4: false) with the kernel backends: `weft lab up --ipv6-only`, real
 * daemons (dist/cli.js `weft run`, build first) and a real etcd, once per backend:
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *                          docker0 fd66:0:0:a::1/64  docker0 fd66:0:0:b::1/64  docker0 fd66:0:0:c::1/64
 *                               |  (no IPv4)              |                         |
 *                           <p>-h1c1                  <p>-h2c1                  <p>-h3c1
 *
 * The underlay keeps its IPv4 (etcd is reached over it); the overlay is IPv6 only: leases
 * 0.0.0.0-0&fd66:0:0:<x>::-64 with PublicIP 0.0.0.0, no flannel.1 (vxlan: flannel-v6.1 alone),
 * no IPv4 route to a peer, no `ip weft` table, and `lab check` runs the IPv6 matrix only.
 */
import { describe, expect, it } from "vitest";
import { readSubnetEnv } from "../../src/host/subnet-env.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { expectDoctorRepairsIpv6Route, useDaemonLab } from "./daemon-lab.js";

describe.each(["vxlan", "host-gw"])("weft run with kernel backend %s in lab up --ipv6-only (real daemons)", (type) => {
  const daemons = useDaemonLab(type === "vxlan" ? "wo6v" : "wo6h", { hosts: 3, containersPerHost: 1, backend: type, ipv6Only: true, daemonArgs: ["--reconcile-interval=30"] });

  it("lab check passes the IPv6 matrix (and runs no IPv4 probe); etcd holds flanneld's IPv6-only keys and values", async () => {
    const lab = daemons.lab();
    const { ok, table, results } = await lab.checkTable();
    const listing = (await lab.etcdctl(["get", "--prefix", "/coreos.com/network/"])).stdout;
    console.log(`${type}: weft lab up --ipv6-only\n${table}\netcdctl get --prefix /coreos.com/network/:\n${listing}`);
    expect(ok, table).toBe(true);
    expect(results.filter((result) => result.family === 4)).toEqual([]);
    expect(results.filter((result) => result.family === 6 && result.kind === "ping")).toHaveLength(6);
    expect(table).not.toMatch(/IPv4/);
    expect(listing).toContain(`{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"${type}"}}`);
    const keys = listing.split("\n").filter((line) => line.startsWith("/coreos.com/network/subnets/"));
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(key).toMatch(/^\/coreos\.com\/network\/subnets\/0\.0\.0\.0-0&fd66:0:0:[0-9a-f]+::-64$/);
    if (type === "vxlan") {
      expect(listing).toMatch(/^\{"PublicIP":"0\.0\.0\.0","PublicIPv6":"fd77::1[123]","BackendType":"vxlan","BackendV6Data":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}\}$/m);
      expect(listing).not.toContain('"BackendData"');
    } else {
      expect(listing).toMatch(/^\{"PublicIP":"0\.0\.0\.0","PublicIPv6":"fd77::1[123]","BackendType":"host-gw"\}$/m);
    }
  });

  it("subnet.env has the IPv6 pair alone; the host has no IPv4 overlay state (no flannel.1, no route into 10.66/16, no ip weft table)", async () => {
    const lab = daemons.lab();
    const env = await readSubnetEnv(lab.host("h1").state.subnetFile);
    expect(env?.network).toBeUndefined();
    expect(env?.subnetAddress).toBeUndefined();
    expect(env?.ipv6Network).toBe("fd66::/48");
    expect(env?.ipv6Subnet).toMatch(/^fd66:0:0:[0-9a-f]+::1\/64$/);
    expect(env?.mtu).toBe(type === "vxlan" ? 1430 : 1500);
    const links = (await lab.host("h1").exec("ip", ["-o", "link", "show"])).stdout;
    expect(links).not.toMatch(/ flannel\.1[:@]/);
    if (type === "vxlan") expect(links).toMatch(/ flannel-v6\.1: /);
    const routes4 = (await lab.host("h1").exec("ip", ["-4", "route", "show"])).stdout;
    expect(routes4).not.toMatch(/^10\.66\./m);
    const routes6 = (await lab.host("h1").exec("ip", ["-6", "route", "show"])).stdout;
    expect(routes6.match(/^fd66:0:0:[0-9a-f]+::\/64 via /gm)).toHaveLength(2);
    const tables = (await lab.host("h1").exec("nft", ["list", "tables"])).stdout;
    expect(tables).toContain("table ip6 weft");
    expect(tables).not.toMatch(/^table ip weft$/m);
  });

  it("weft leases shows the IPv6-only leases; doctor finds a deleted IPv6 route and --repair puts it back", async () => {
    const lab = daemons.lab();
    const leases = await lab.host("h1").exec(process.execPath, [weftCliPath(), "leases", `--etcd-endpoints=${lab.etcdEndpoint}`]);
    expect(leases.stdout).toMatch(/^SUBNET\s+IPV6 SUBNET\s+PUBLIC IP\s+PUBLIC IPV6/);
    expect(leases.stdout).toMatch(/^-\s+fd66:0:0:[0-9a-f]+::\/64\s+-\s+fd77::11\s/m);
    const env = await readSubnetEnv(lab.host("h2").state.subnetFile);
    const subnetV6 = Ipv6Subnet.parse(env?.ipv6Subnet ?? "", "h2 FLANNEL_IPV6_SUBNET").toString();
    const clean = await daemons.doctor("h1");
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/own subnet fd66:0:0:[0-9a-f]+::\/64, 2 peer lease\(s\)/);
    await expectDoctorRepairsIpv6Route(daemons, "h1", subnetV6);
  });
});
