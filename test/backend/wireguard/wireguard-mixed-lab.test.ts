/*
 * A mixed wireguard cluster: h1 and h2 run weft (`"Backend": {"Type": "wireguard"}`), h3 is a
 * flanneld-style host done by hand with Debian's wireguard-go and wg(8): its lease written to
 * etcd as flanneld writes it (BackendType "wireguard", BackendData {"PublicKey","Port"}), its
 * device configured as flanneld's wireguard backend configures flannel-wg (subnet address /32,
 * the Network routed into it, MTU 1500 - 80, one peer per lease: PublicKey, endpoint
 * PublicIP:Port, AllowedIPs the lease's subnet), docker0 from a subnet.env like flanneld's.
 * wireguard-go runs with h3's own /run/wireguard (test/support/wireguard-go.ts), as every lab
 * host has; the device name is unique per run all the same.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          wireguard-go + wg (by hand),
 *                   flannel-wg (TUN)  flannel-wg (TUN)  lease written with etcdctl
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSubnetEnv } from "../../../src/host/subnet-env.js";
import { ipBatch } from "../../../src/lab/netns.js";
import { waitUntil } from "../../../src/lab/readiness.js";
import { Ipv4Subnet, parseIpv4 } from "../../../src/net/ipv4.js";
import { terminatePids } from "../../../src/process/pids.js";
import { startWireguardGoOnLabHost, wireguardLeases } from "../../support/wireguard-go.js";
import { fewestPeers } from "../../support/lab-metrics.js";
import { useLab } from "../../support/lab.js";

const NETWORK = "10.66.0.0/16";
const MTU = 1500 - 80;

describe("mixed wireguard cluster: weft hosts and a flanneld-style wireguard-go host", () => {
  const lab = useLab("wgx", { hosts: 3, containersPerHost: 1, backend: "wireguard", deferredHosts: ["h3"] });
  const device = `${lab.name}wg`;
  let dir: string;
  let wgPid: number | undefined;
  let subnet: Ipv4Subnet;

  const leases = () => wireguardLeases(lab());
  const weftPeers = (host: string): Promise<number> => fewestPeers(lab().host(host));
  const h3 = (command: string, args: string[], input?: string) => lab().host("h3").exec(command, args, { input });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-wg-mixed-"));

    // h3's key and lease, as flanneld would write them.
    const privateKey = (await h3("wg", ["genkey"])).stdout.trim();
    await writeFile(join(dir, "wgkey"), privateKey, { mode: 0o400 });
    const publicKey = (await h3("wg", ["pubkey"], `${privateKey}\n`)).stdout.trim();
    const taken = await leases();
    let third = 200;
    while (taken.has(`10.66.${third}.0/24`)) third++;
    subnet = Ipv4Subnet.parse(`10.66.${third}.0/24`);
    const value = { PublicIP: lab().host("h3").underlayAddress, PublicIPv6: null, BackendType: "wireguard", BackendData: { PublicKey: publicKey, Port: 51820 } };
    const grant = (await lab().etcdctl(["lease", "grant", "86400"])).stdout;
    const leaseId = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
    if (!leaseId) throw new Error(`etcdctl lease grant said: ${grant}`);
    await lab().etcdctl(["put", `--lease=${leaseId}`, `/coreos.com/network/subnets/10.66.${third}.0-24`, JSON.stringify(value)]);

    // h3's device, as flanneld's wireguard backend configures flannel-wg.
    wgPid = await startWireguardGoOnLabHost(lab(), "h3", device, join(dir, "wireguard-go.log"));
    const peerArgs: string[] = [];
    for (const [leaseSubnet, lease] of await leases()) {
      if (lease.PublicIP === lab().host("h3").underlayAddress) continue;
      peerArgs.push("peer", lease.BackendData.PublicKey, "endpoint", `${lease.PublicIP}:${lease.BackendData.Port}`, "allowed-ips", leaseSubnet);
    }
    await h3("wg", ["set", device, "private-key", join(dir, "wgkey"), "listen-port", "51820", ...peerArgs]);
    await ipBatch(lab().host("h3").namespace, [
      `address add ${subnet.toString().replace("/24", "")}/32 dev ${device}`,
      `link set ${device} mtu ${MTU} up`,
      `route add ${NETWORK} dev ${device} scope link`,
    ]);
    await writeSubnetEnv(lab().host("h3").state.subnetFile, {
      network: Ipv4Subnet.parse(NETWORK), subnetAddress: { address: parseIpv4(`10.66.${third}.1`), prefixLength: 24 }, mtu: MTU, ipMasq: false,
    });
    await lab().refreshContainers("h3");
  }, 120_000);

  afterAll(async () => {
    if (wgPid !== undefined) await terminatePids([wgPid], 2000);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the weft hosts program the flanneld-style lease as a peer", async () => {
    for (const host of ["h1", "h2"]) await waitUntil(`${host} programming h3 as a peer`, async () => (await weftPeers(host)) >= 2, { timeoutMs: 20_000, intervalMs: 200 });
  });

  it("passes the full ping matrix both ways and max-size don't-fragment pings", async () => {
    const { ok, table } = await lab().checkTable();
    console.log(`mixed wireguard lab\n${table}`);
    expect(ok, table).toBe(true);
    const handshakes = (await h3("wg", ["show", device, "latest-handshakes"])).stdout.trim().split("\n");
    expect(handshakes).toHaveLength(2);
    for (const line of handshakes) expect(Number(line.split(/\s+/)[1]), line).toBeGreaterThan(0);
  });
});
