/*
 * The kernel backends in `weft lab up --ipv6`'s topology, judged by the lab's own `check`
 * (ping matrix and largest don't-fragment ping, per family), once per backend:
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *                          docker0 10.66.1.1/24      docker0 10.66.2.1/24      docker0 10.66.3.1/24
 *                                  fd66:0:0:1::1/64          fd66:0:0:2::1/64          fd66:0:0:3::1/64
 *                               |                         |                         |
 *                           <p>-h1c1                  <p>-h2c1                  <p>-h3c1
 *
 * The lab runs no daemons ("none": a static dual-stack subnet.env per host); the test runs each
 * host's backend in this process against the host's namespace, hands it the dual-stack leases
 * the control plane would acquire (10.66.<i>.0/24 & fd66:0:0:<i>::/64), writes the backend's MTU
 * into subnet.env and lets the lab re-attach the containers with it, as docker would.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatCheckMatrix } from "../../src/lab/check.js";
import { Kernel } from "../../src/kernel/kernel.js";
import { VxlanBackend } from "../../src/backend/vxlan/vxlan-backend.js";
import { HostGwBackend } from "../../src/backend/host-gw/host-gw-backend.js";
import type { Backend } from "../../src/backend/backend.js";
import type { Lease } from "../../src/lease/types.js";
import { previousSubnet, readSubnetEnv, writeSubnetEnv } from "../../src/host/subnet-env.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { expectDoctorRepairsIpv6Route, useDaemonLab } from "./daemon-lab.js";
import { DUAL_STACK, backendContext, lease } from "./kernel-fixtures.js";
import { useLab } from "../support/lab.js";

const HOSTS = ["h1", "h2", "h3"];

describe.each(["vxlan", "host-gw"])("kernel backend %s in a dual-stack 3-host lab (lab check, both families)", (type) => {
  const lab = useLab(type === "vxlan" ? "wl6v" : "wl6h", { hosts: HOSTS.length, containersPerHost: 1, daemons: "none", ipv6: true });
  const backends: Backend[] = [];
  const leases: Lease[] = [];
  let mtu = 0;

  beforeAll(async () => {
    for (const host of HOSTS) {
      const state = lab().host(host).state;
      const env = await readSubnetEnv(state.subnetFile);
      const subnet = env && previousSubnet(env);
      if (!env || !subnet || env.ipv6Subnet === undefined) throw new Error(`${host}: the lab's static subnet.env is not dual-stack`);
      const external = { name: state.underlayDevice, address: lab().host(host).underlayAddress, addressV6: state.underlayAddressV6 as string };
      const context = await backendContext({ Type: type }, external, state.stateDir, DUAL_STACK);
      const kernel = new Kernel(lab().namespaceOf(host));
      const backend = type === "vxlan" ? new VxlanBackend(context, kernel) : new HostGwBackend(context, kernel);
      const registration = await backend.register();
      const own = lease(subnet.toString(), { publicIP: external.address, publicIPv6: external.addressV6, ...registration.attrs }, Ipv6Subnet.parse(env.ipv6Subnet).toString());
      await backend.activate(own);
      backends.push(backend);
      leases.push(own);
      mtu = registration.mtu;
      await writeSubnetEnv(state.subnetFile, { ...env, mtu: registration.mtu });
      await lab().refreshContainers(host);
    }
    await Promise.all(backends.map((backend, i) => backend.applyPeers(leases.filter((_, j) => j !== i).map((peer) => ({ kind: "added", lease: peer })))));
  });
  afterAll(async () => {
    await Promise.all(backends.map((backend) => backend.stop()));
  });

  it("lab check passes the IPv4 and the IPv6 ping matrix and the largest don't-fragment ping of each family", async () => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    console.log(`${type} dual-stack lab (FLANNEL_MTU ${mtu}):\n${matrix}`);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    for (const family of [4, 6] as const) {
      expect(results.filter((result) => result.family === family && result.kind === "ping")).toHaveLength(6);
      const df = results.filter((result) => result.family === family && result.kind === "df");
      expect(df.map((result) => result.payload)).toEqual(Array(3).fill(mtu - (family === 4 ? 28 : 48)));
    }
    expect(mtu).toBe(type === "vxlan" ? 1430 : 1500);
  });
});

/*
 * The same lab with real daemons (dist/cli.js `weft run`, build first) and real etcd: the
 * control plane acquires the dual-stack leases, the kernel backends program both families.
 */
describe.each(["vxlan", "host-gw"])("weft run with kernel backend %s in lab up --ipv6 (real daemons)", (type) => {
  const daemons = useDaemonLab(type === "vxlan" ? "wr6v" : "wr6h", { hosts: 3, containersPerHost: 1, backend: type, ipv6: true, daemonArgs: ["--reconcile-interval=30"] });

  it("lab check passes both families; etcd holds flanneld's dual-stack keys and values", async () => {
    const lab = daemons.lab();
    const { ok, table } = await lab.checkTable();
    const listing = (await lab.etcdctl(["get", "--prefix", "/coreos.com/network/subnets/"])).stdout;
    console.log(`${type}: weft lab up --ipv6\n${table}\netcdctl get --prefix /coreos.com/network/subnets/:\n${listing}`);
    expect(ok, table).toBe(true);
    expect(listing).toMatch(/^\/coreos\.com\/network\/subnets\/10\.66\.\d+\.0-24&fd66:0:0:[0-9a-f]+::-64$/m);
    if (type === "vxlan") {
      expect(listing).toMatch(/"PublicIPv6":"fd77::1\d","BackendType":"vxlan","BackendData":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\},"BackendV6Data":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}/);
    } else {
      expect(listing).toMatch(/"PublicIPv6":"fd77::1\d","BackendType":"host-gw"/);
    }
  });

  it("doctor lists the IPv6 objects, finds a deleted IPv6 route and --repair puts it back", async () => {
    const env = await readSubnetEnv(daemons.lab().host("h2").state.subnetFile);
    const subnetV6 = env?.ipv6Subnet === undefined ? undefined : Ipv6Subnet.parse(env.ipv6Subnet).toString();
    expect(subnetV6).toMatch(/^fd66:0:0:[0-9a-f]+::\/64$/);
    await expectDoctorRepairsIpv6Route(daemons, "h1", subnetV6 as string);
  });
});
