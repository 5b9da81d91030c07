/*
 * IPv6 on the wireguard backend's device path, as flanneld does it, in a dual-stack 3-host lab
 * with real etcd, real daemons and Debian's wireguard-go (this kernel has no WireGuard):
 * Mode "separate" first (two devices, two wireguard-go processes per host), then the network
 * config is switched to Mode "auto" and every daemon restarted (one device for both families;
 * the left-over flannel-wg-v6 and its wireguard-go go). Each host has its own /run/wireguard.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12       <p>-h3 .13 fd77::13
 *   real etcd              weft run                  weft run                  weft run
 *             separate:    flannel-wg    udp/51820 (IPv4 subnets, endpoints PublicIP:51820)
 *                          flannel-wg-v6 udp/51821 (IPv6 subnets, endpoints [PublicIPv6]:51821)
 *             auto:        flannel-wg    udp/51820 (both subnets per peer)
 *                          docker0 10.66.x.1/24 and fd66:0:0:x::1/64 on each host
 *                               |                         |                         |
 *                           <p>-h1c1                  <p>-h2c1                  <p>-h3c1
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { formatCheckMatrix } from "../../../src/lab/check.js";
import { waitUntil } from "../../../src/lab/readiness.js";
import { isAlive } from "../../../src/process/pids.js";
import { parseWgDump, type WgDump } from "../../../src/kernel/wireguard-device.js";
import { readEndpoint } from "../../support/lab-metrics.js";
import { leases as leasesInEtcd } from "../../support/lab-etcd.js";
import { useLab } from "../../support/lab.js";

const V4 = "flannel-wg";
const V6 = "flannel-wg-v6";
const MTU = 1500 - 80;
const IPV6_NETWORK = "fd66::/48";
const HOSTS = ["h1", "h2", "h3"] as const;

interface Half {
  PublicKey: string;
  Port: number;
}
interface DualStackLeaseValue {
  PublicIP: string;
  PublicIPv6: string | null;
  BackendType: string;
  BackendData: Half;
  BackendV6Data?: Half;
}
interface DualStackLease {
  key: string;
  subnet: string;
  subnetV6: string;
  value: DualStackLeaseValue;
}

describe("wireguard-go device path with IPv6 (Mode separate, then auto), dual-stack 3-host lab", () => {
  const config: Record<string, unknown> = { Network: "10.66.0.0/16", EnableIPv6: true, IPv6Network: IPV6_NETWORK, Backend: { Type: "wireguard", Implementation: "wireguard-go" } };
  const lab = useLab("wg6", {
    hosts: HOSTS.length, containersPerHost: 1, backend: "wireguard", ipv6: true, ipv6Network: IPV6_NETWORK, networkConfig: config,
    daemonArgs: ["--reconcile-interval=2"],
  });

  /** The leases in etcd: key `10.66.3.0-24&fd66:0:0:3::-64`. */
  const leases = async (): Promise<DualStackLease[]> => {
    return (await leasesInEtcd<DualStackLeaseValue>(lab())).map(({ key, value }) => {
      const [v4, v6] = (key.split("/").pop() as string).split("&") as [string, string];
      return { key, subnet: v4.replace("-", "/"), subnetV6: v6.replace(/-(\d+)$/, "/$1"), value };
    });
  };
  const leaseOf = async (host: string): Promise<DualStackLease> => {
    const found = (await leases()).find((lease) => lease.value.PublicIP === lab().host(host).underlayAddress);
    if (!found) throw new Error(`no lease of ${host} in etcd`);
    return found;
  };
  const dump = async (host: string, device: string): Promise<WgDump> => parseWgDump((await lab().host(host).exec("wg", ["show", device, "dump"])).stdout);
  const peerKeys = async (host: string, device: string): Promise<string[]> => (await dump(host, device)).peers.map((peer) => peer.publicKey).sort();
  const ip = async (host: string, args: string[]): Promise<string> => (await lab().host(host).exec("ip", args)).stdout;
  const http = (host: string, path: string): Promise<string> => readEndpoint(lab().host(host), path);
  const pidOf = async (host: string, device: string): Promise<number> =>
    Number((await readFile(join(lab().host(host).state.stateDir, `wireguard-go.${device}.pid`), "utf8")).trim());
  const expectCheckPasses = async (what: string): Promise<void> => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    console.log(`${what}\n${matrix}`);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    for (const family of [4, 6] as const) expect(results.filter((result) => result.family === family && result.kind === "ping"), `IPv${family} pings`).toHaveLength(6);
  };
  const matrixOk = async (): Promise<boolean> => (await lab().checkTable()).ok;
  /** Reconcile runs every 2 s: a device it finds out of line with its own plan would be "repaired" again and again. */
  const repairsLogged = async (host: string): Promise<number> =>
    ((await readFile(lab().host(host).state.logFile, "utf8")).match(/repairing the WireGuard device that drifted/g) ?? []).length;
  const sorted = <T extends { publicKey: string }>(items: T[]): T[] => items.sort((a, b) => a.publicKey.localeCompare(b.publicKey));

  describe('Mode "separate"', () => {
    it("advertises BackendV6Data with the same key and ListenPortV6 beside BackendData", async () => {
      for (const host of HOSTS) {
        const { value } = await leaseOf(host);
        expect(value.PublicIPv6).toBe(lab().host(host).state.underlayAddressV6);
        expect(value.BackendData).toEqual({ PublicKey: expect.any(String), Port: 51820 });
        expect(value.BackendV6Data).toEqual({ PublicKey: value.BackendData.PublicKey, Port: 51821 });
        expect(Object.keys(value.BackendV6Data as Half)).toEqual(["PublicKey", "Port"]);
      }
    });

    it("runs flannel-wg and flannel-wg-v6 (two wireguard-go) with one key, their ports, addresses, routes and peers", async () => {
      const own = await leaseOf("h1");
      const [v4, v6] = [await dump("h1", V4), await dump("h1", V6)];
      expect(v4.device).toEqual({ publicKey: own.value.BackendData.PublicKey, listenPort: 51820 });
      expect(v6.device).toEqual({ publicKey: own.value.BackendData.PublicKey, listenPort: 51821 });
      expect(isAlive(await pidOf("h1", V4))).toBe(true);
      expect(isAlive(await pidOf("h1", V6))).toBe(true);
      expect(await pidOf("h1", V6)).not.toBe(await pidOf("h1", V4));
      for (const device of [V4, V6]) expect(await ip("h1", ["-o", "link", "show", device])).toContain(`mtu ${MTU}`);

      expect(await ip("h1", ["-6", "-o", "addr", "show", "dev", V6, "scope", "global"])).toContain(`inet6 ${own.subnetV6.split("/")[0]}/128`);
      expect(await ip("h1", ["-6", "route", "show", "dev", V6])).toContain(IPV6_NETWORK);
      expect(await ip("h1", ["-6", "-o", "addr", "show", "dev", V4, "scope", "global"])).toBe("");
      expect(await ip("h1", ["-6", "route", "show", IPV6_NETWORK])).toMatch(new RegExp(`dev ${V6}\\b`));
      expect(await ip("h1", ["-4", "-o", "addr", "show", "dev", V4])).toContain(`inet ${own.subnet.split("/")[0]}/32`);

      const others = (await leases()).filter((lease) => lease.key !== own.key);
      const held = (d: WgDump) => d.peers.map(({ publicKey, endpoint, allowedIps }) => ({ publicKey, endpoint, allowedIps }));
      expect(sorted(held(v4))).toEqual(sorted(others.map((lease) => ({
        publicKey: lease.value.BackendData.PublicKey, endpoint: `${lease.value.PublicIP}:51820`, allowedIps: [lease.subnet],
      }))));
      expect(sorted(held(v6))).toEqual(sorted(others.map((lease) => ({
        publicKey: (lease.value.BackendV6Data as Half).PublicKey, endpoint: `[${lease.value.PublicIPv6}]:51821`, allowedIps: [lease.subnetV6],
      }))));
    });

    it("passes lab check: IPv4 and IPv6 ping matrix and DF pings, container to container", async () => {
      await expectCheckPasses('wireguard-go, Mode "separate"');
      for (const host of HOSTS) expect(await repairsLogged(host), `${host}'s log`).toBe(0);
      const metrics = await http("h1", "/metrics");
      expect(metrics).toMatch(/^weft_wireguard_peers\{state="configured"\} 4$/m);
      expect(metrics).toMatch(/^weft_wireguard_peers\{state="handshaken"\} 4$/m);
      expect(await http("h1", "/readyz?verbose")).toContain(`[i] wireguardDevices ${V4},${V6}`);
    });

    it("removes a host's IPv6 peer (and IPv4 peer) when its lease is deleted, and adds them back when it returns", async () => {
      const h3 = await leaseOf("h3");
      const key = h3.value.BackendData.PublicKey;
      await lab().stopDaemon("h3");
      await lab().etcdctl(["del", h3.key]);
      await waitUntil("h3's peers gone from h1's and h2's devices", async () => {
        const held = await Promise.all([peerKeys("h1", V6), peerKeys("h2", V6), peerKeys("h1", V4), peerKeys("h2", V4)]);
        return held.every((keys) => !keys.includes(key));
      }, { timeoutMs: 5000, intervalMs: 50 });
      await lab().startDaemon("h3");
      await waitUntil("the mesh whole again", matrixOk, { timeoutMs: 30_000, intervalMs: 500 });
      expect(await peerKeys("h1", V6)).toContain((await leaseOf("h3")).value.BackendData.PublicKey);
    }, 60_000);

    it("repairs drift on flannel-wg-v6: a peer removed by hand and its route come back", async () => {
      const h2Key = (await leaseOf("h2")).value.BackendData.PublicKey;
      await lab().host("h1").exec("wg", ["set", V6, "peer", h2Key, "remove"]);
      await lab().host("h1").exec("ip", ["-6", "route", "del", IPV6_NETWORK, "dev", V6]);
      await waitUntil("reconcile putting h2's IPv6 peer and the IPv6Network route back on h1", async () =>
        (await peerKeys("h1", V6)).includes(h2Key) && (await ip("h1", ["-6", "route", "show", "dev", V6])).includes(IPV6_NETWORK), { timeoutMs: 10_000, intervalMs: 200 });
      await waitUntil("the mesh whole after the repair", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
    }, 40_000);
  });

  describe('Mode "auto" (after a config change and a restart of every daemon)', () => {
    let oldV6Pid = 0;
    beforeAll(async () => {
      oldV6Pid = await pidOf("h1", V6);
      await lab().etcdctl(["put", "/coreos.com/network/config", JSON.stringify({ ...config, Backend: { Type: "wireguard", Implementation: "wireguard-go", Mode: "auto" } })]);
      for (const host of HOSTS) await lab().stopDaemon(host);
      for (const host of HOSTS) await lab().startDaemon(host);
    }, 90_000);

    it("takes flannel-wg-v6 and its wireguard-go down, and advertises the one device's port in BackendV6Data", async () => {
      expect(isAlive(oldV6Pid)).toBe(false);
      expect((await lab().host("h1").exec("ip", ["link", "show", V6], { allowFailure: true })).exitCode).not.toBe(0);
      for (const host of HOSTS) expect((await leaseOf(host)).value.BackendV6Data?.Port).toBe(51820);
      expect(await http("h1", "/readyz?verbose")).toContain(`[i] wireguardDevices ${V4}\n`);
    });

    it("puts both subnets of each peer on flannel-wg, its IPv6 address and the IPv6Network route too", async () => {
      const own = await leaseOf("h1");
      expect(await ip("h1", ["-6", "-o", "addr", "show", "dev", V4, "scope", "global"])).toContain(`inet6 ${own.subnetV6.split("/")[0]}/128`);
      expect(await ip("h1", ["-6", "route", "show", "dev", V4])).toContain(IPV6_NETWORK);
      const others = (await leases()).filter((lease) => lease.key !== own.key);
      // The lab's underlay is private (192.168/16, fd77::/64): flanneld's selectMode picks IPv4 endpoints.
      const held = (await dump("h1", V4)).peers.map(({ publicKey, endpoint, allowedIps }) => ({ publicKey, endpoint, allowedIps: [...allowedIps].sort() }));
      expect(sorted(held)).toEqual(sorted(others.map((lease) => ({
        publicKey: lease.value.BackendData.PublicKey, endpoint: `${lease.value.PublicIP}:51820`, allowedIps: [lease.subnet, lease.subnetV6].sort(),
      }))));
    });

    it("passes lab check: IPv4 and IPv6 ping matrix over the one device", async () => {
      await waitUntil("the mesh whole in Mode auto", matrixOk, { timeoutMs: 30_000, intervalMs: 500 });
      await expectCheckPasses('wireguard-go, Mode "auto"');
      await new Promise((resolve) => setTimeout(resolve, 2500)); // one more reconcile pass
      for (const host of ["h2", "h3"]) expect(await repairsLogged(host), `${host}'s log`).toBe(0);
    }, 60_000);
  });
});
