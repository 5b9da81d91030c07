/*
 * IPv6 on weft's userspace WireGuard (Mode "separate", the default) in a dual-stack 3-host lab
 * with real etcd and real daemons, every host on Implementation "userspace": the engine's IPv4
 * interface on ListenPort, its IPv6 interface (flanneld's flannel-wg-v6) on ListenPortV6, one TUN.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *   real etcd              weft run (userspace)      weft run (userspace)      weft run (userspace)
 *                          TUN flannel-wg: /32 + /128, 10.66.0.0/16 and fd66::/48 routed into it
 *                          udp/51820 (IPv4 peers, [PublicIP]:51820)
 *                          udp/51821 (IPv6 peers, [PublicIPv6]:51821, own sessions)
 *                          docker0 10.66.x.1/24 and fd66:0:0:x::1/64 on each host
 *                               |                         |                         |
 *                           <p>-h1c1                  <p>-h2c1                  <p>-h3c1
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { formatCheckMatrix } from "../../../src/lab/check.js";
import { waitUntil } from "../../../src/lab/readiness.js";
import { readEndpoint } from "../../support/lab-metrics.js";
import { leases as leasesInEtcd } from "../../support/lab-etcd.js";
import { useLab } from "../../support/lab.js";

const DEVICE = "flannel-wg";
const IPV6_NETWORK = "fd66::/48";
const HOSTS = ["h1", "h2", "h3"] as const;

interface Half {
  PublicKey: string;
  Port: number;
}
interface LeaseValue {
  PublicIP: string;
  PublicIPv6: string | null;
  BackendData: Half;
  BackendV6Data?: Half;
}

describe("userspace wireguard with IPv6 (Mode separate), dual-stack 3-host lab", () => {
  const lab = useLab("wu6", {
    hosts: HOSTS.length, containersPerHost: 1, backend: "wireguard", ipv6: true, ipv6Network: IPV6_NETWORK,
    networkConfig: { Network: "10.66.0.0/16", EnableIPv6: true, IPv6Network: IPV6_NETWORK, Backend: { Type: "wireguard", Implementation: "userspace" } },
  });

  const leases = (): Promise<{ key: string; value: LeaseValue }[]> => leasesInEtcd<LeaseValue>(lab());
  const leaseOf = async (host: string) => {
    const found = (await leases()).find((lease) => lease.value.PublicIP === lab().host(host).underlayAddress);
    if (!found) throw new Error(`no lease of ${host} in etcd`);
    return found;
  };
  const http = (host: string, path: string): Promise<string> => readEndpoint(lab().host(host), path);
  const configuredPeers = async (host: string): Promise<number> =>
    Number(/^weft_wireguard_peers\{state="configured"\} (\d+)$/m.exec(await http(host, "/metrics"))?.[1] ?? "-1");
  const udpListeners = async (host: string): Promise<string> => (await lab().host(host).exec("ss", ["-Hlun"])).stdout;

  it("advertises BackendV6Data (the same key, ListenPortV6) and listens on [PublicIPv6]:51821 beside PublicIP:51820", async () => {
    for (const host of HOSTS) {
      const { value } = await leaseOf(host);
      expect(value.PublicIPv6).toBe(lab().host(host).state.underlayAddressV6);
      expect(value.BackendData).toEqual({ PublicKey: expect.any(String), Port: 51820 });
      expect(value.BackendV6Data).toEqual({ PublicKey: value.BackendData.PublicKey, Port: 51821 });
      const listening = await udpListeners(host);
      expect(listening).toContain(`${lab().host(host).underlayAddress}:51820`);
      expect(listening).toContain(`[${lab().host(host).state.underlayAddressV6}]:51821`);
      expect(await http(host, "/readyz?verbose")).toContain("[i] wireguardIpv6 forwarded (Mode separate");
      const log = await readFile(lab().host(host).state.logFile, "utf8");
      expect(log).not.toMatch(/forwards IPv6 in Mode "separate" only|NO IPv6 is forwarded/);
    }
    const address = (await lab().host("h1").exec("ip", ["-6", "-o", "addr", "show", "dev", DEVICE, "scope", "global"])).stdout;
    expect(address).toMatch(/inet6 fd66:[0-9a-f:]+\/128/);
    expect((await lab().host("h1").exec("ip", ["-6", "route", "show", "dev", DEVICE])).stdout).toContain(IPV6_NETWORK);
  });

  it("passes lab check: IPv4 and IPv6 ping matrices and DF pings at the advertised MTU, container to container", async () => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    console.log(`userspace wireguard, Mode "separate"\n${matrix}`);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    for (const family of [4, 6] as const) {
      expect(results.filter((result) => result.family === family && result.kind === "ping"), `IPv${family} pings`).toHaveLength(6);
      expect(results.filter((result) => result.family === family && result.kind === "df"), `IPv${family} DF pings`).not.toHaveLength(0);
    }
    // Two peer states per other host: one per interface.
    expect(await configuredPeers("h1")).toBe(4);
    expect(await http("h1", "/metrics")).toMatch(/^weft_wireguard_peers\{state="handshaken"\} 4$/m);
  });

  it("removes a host's IPv6 peer (and IPv4 peer) when its lease is deleted, and serves it again when it returns", async () => {
    const h3 = await leaseOf("h3");
    await lab().stopDaemon("h3");
    await lab().etcdctl(["del", h3.key]);
    await waitUntil("h3's two peer states gone from h1 and h2", async () => (await configuredPeers("h1")) === 2 && (await configuredPeers("h2")) === 2, {
      timeoutMs: 10_000, intervalMs: 100,
    });
    await lab().startDaemon("h3");
    await waitUntil("the mesh whole again, both families", async () => (await lab().checkTable()).ok, { timeoutMs: 30_000, intervalMs: 500 });
    expect(await configuredPeers("h1")).toBe(4);
  }, 60_000);
});
