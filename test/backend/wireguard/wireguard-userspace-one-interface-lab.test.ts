/*
 * weft's userspace WireGuard in Mode "ipv6" (one interface for both families, every dual-stack
 * peer reached at [PublicIPv6]:ListenPort) against the wireguard-go device path in the same Mode,
 * in a dual-stack 3-host lab: h1 and h2 run the userspace engine (the network config), h3
 * Debian's wireguard-go ($WEFT_WIREGUARD_IMPLEMENTATION=wireguard-go on h3 only), one device
 * flannel-wg with both subnets per peer.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *   real etcd              weft (userspace)          weft (userspace)          weft (wireguard-go)
 *                          TUN flannel-wg            TUN flannel-wg            flannel-wg
 *                          udp + udp6 on 51820       udp + udp6 on 51820       udp/51820 (both families)
 *                               |                         |                         |
 *                           <p>-h1c1                  <p>-h2c1                  <p>-h3c1
 */
import { describe, expect, it } from "vitest";
import { formatCheckMatrix } from "../../../src/lab/check.js";
import { parseWgDump } from "../../../src/kernel/wireguard-device.js";
import { readEndpoint } from "../../support/lab-metrics.js";
import { leaseValues } from "../../support/lab-etcd.js";
import { useLab } from "../../support/lab.js";

const IPV6_NETWORK = "fd66::/48";

interface Half {
  PublicKey: string;
  Port: number;
}

describe('userspace wireguard (h1, h2) and wireguard-go (h3), Mode "ipv6", dual-stack', () => {
  const lab = useLab("wo6", {
    hosts: 3, containersPerHost: 1, backend: "wireguard", ipv6: true, ipv6Network: IPV6_NETWORK,
    networkConfig: { Network: "10.66.0.0/16", EnableIPv6: true, IPv6Network: IPV6_NETWORK, Backend: { Type: "wireguard", Implementation: "userspace", Mode: "ipv6" } },
    daemonEnv: { h3: { WEFT_WIREGUARD_IMPLEMENTATION: "wireguard-go" } },
  });

  const http = (host: string, path: string): Promise<string> => readEndpoint(lab().host(host), path);

  it("advertises the one interface's port in BackendV6Data and listens on PublicIP and [PublicIPv6], both on 51820", async () => {
    const values = await leaseValues<{ PublicIP: string; BackendData: Half; BackendV6Data?: Half }>(lab());
    for (const host of ["h1", "h2"]) {
      const lease = values.find((value) => value.PublicIP === lab().host(host).underlayAddress);
      expect(lease?.BackendV6Data).toEqual({ PublicKey: lease?.BackendData.PublicKey, Port: 51820 });
      const listening = (await lab().host(host).exec("ss", ["-Hlun"])).stdout;
      expect(listening).toContain(`${lab().host(host).underlayAddress}:51820`);
      expect(listening).toContain(`[${lab().host(host).state.underlayAddressV6}]:51820`);
      expect(listening).not.toContain(":51821");
      expect(await http(host, "/readyz?verbose")).toContain("[i] wireguardIpv6 forwarded (Mode ipv6: one interface for both families on ListenPort 51820)");
    }
  });

  it("passes lab check: IPv4 and IPv6 ping matrices and DF pings, every direction, all over IPv6 endpoints", async () => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    console.log(`userspace (h1, h2) and wireguard-go (h3), Mode "ipv6"\n${matrix}`);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    for (const family of [4, 6] as const) expect(results.filter((result) => result.family === family && result.kind === "ping"), `IPv${family} pings`).toHaveLength(6);
    // h3's device: one peer per weft host with both subnets, reached (and handshaken) at [PublicIPv6]:51820.
    const dump = parseWgDump((await lab().host("h3").exec("wg", ["show", "flannel-wg", "dump"])).stdout);
    expect(dump.peers).toHaveLength(2);
    for (const peer of dump.peers) {
      expect(peer.endpoint).toMatch(/^\[fd77::1[12]\]:51820$/);
      expect(peer.allowedIps).toHaveLength(2);
      expect(peer.latestHandshakeSeconds).toBeGreaterThan(0);
    }
    // The userspace hosts: one peer state per other host, at its IPv6 endpoint.
    expect(await http("h1", "/metrics")).toMatch(/^weft_wireguard_peers\{state="configured"\} 2$/m);
  });
});
