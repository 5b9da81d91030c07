/*
 * Interop of weft's userspace WireGuard in Mode "separate" with the device path configured as
 * flanneld configures a dual-stack host (flannel-wg on 51820 with IPv4 peers, flannel-wg-v6 on
 * 51821 with IPv6 peers, one key): a dual-stack 3-host lab where h1 and h2 run the userspace
 * engine (the network config) and h3 runs Debian's wireguard-go through the device path
 * ($WEFT_WIREGUARD_IMPLEMENTATION=wireguard-go on h3 only). Both families, every direction.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *   real etcd              weft (userspace)          weft (userspace)          weft (wireguard-go)
 *                          TUN flannel-wg            TUN flannel-wg            flannel-wg    udp/51820
 *                          udp/51820 + udp6/51821    udp/51820 + udp6/51821    flannel-wg-v6 udp/51821
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

describe("userspace wireguard (h1, h2) and the wireguard-go device path (h3), Mode separate, dual-stack", () => {
  const lab = useLab("wm6", {
    hosts: 3, containersPerHost: 1, backend: "wireguard", ipv6: true, ipv6Network: IPV6_NETWORK,
    networkConfig: { Network: "10.66.0.0/16", EnableIPv6: true, IPv6Network: IPV6_NETWORK, Backend: { Type: "wireguard", Implementation: "userspace" } },
    daemonEnv: { h3: { WEFT_WIREGUARD_IMPLEMENTATION: "wireguard-go" } },
  });

  const http = (host: string, path: string): Promise<string> => readEndpoint(lab().host(host), path);

  it("runs the engine on h1 and h2 and two wireguard-go devices on h3, which hold the engines' IPv6 halves as flanneld's flannel-wg-v6 would", async () => {
    for (const [host, implementation] of [["h1", "userspace"], ["h2", "userspace"], ["h3", "wireguard-go"]] as const) {
      expect(await http(host, "/readyz?verbose")).toContain(`[i] wireguardImplementation ${implementation}`);
    }
    const values = await leaseValues<{ PublicIP: string; PublicIPv6: string; BackendData: Half; BackendV6Data?: Half }>(lab());
    const v6 = parseWgDump((await lab().host("h3").exec("wg", ["show", "flannel-wg-v6", "dump"])).stdout);
    expect(v6.device.listenPort).toBe(51821);
    for (const host of ["h1", "h2"]) {
      const lease = values.find((value) => value.PublicIP === lab().host(host).underlayAddress);
      expect(lease?.BackendV6Data).toEqual({ PublicKey: lease?.BackendData.PublicKey, Port: 51821 });
      const peer = v6.peers.find((candidate) => candidate.publicKey === lease?.BackendV6Data?.PublicKey);
      expect(peer?.endpoint).toBe(`[${lease?.PublicIPv6}]:51821`);
    }
  });

  it("passes lab check: IPv4 and IPv6 ping matrices and DF pings, userspace ↔ userspace and userspace ↔ wireguard-go both ways", async () => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    console.log(`userspace (h1, h2) and wireguard-go (h3), Mode "separate"\n${matrix}`);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    for (const family of [4, 6] as const) {
      const pings = results.filter((result) => result.family === family && result.kind === "ping");
      expect(pings, `IPv${family} pings`).toHaveLength(6);
      // h3's container both as source and as destination, in this family.
      expect(pings.filter((result) => result.from === "h3c1" || result.to === "h3c1")).toHaveLength(4);
    }
    const v6 = parseWgDump((await lab().host("h3").exec("wg", ["show", "flannel-wg-v6", "dump"])).stdout);
    expect(v6.peers.every((peer) => peer.latestHandshakeSeconds > 0), JSON.stringify(v6.peers)).toBe(true);
  });
});
