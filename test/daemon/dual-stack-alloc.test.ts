/*
 * Real `weft run` daemons (alloc backend: leases, no packets) in a dual-stack network config:
 *
 *            <lab>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64 (lab up --ipv6)
 *      +-----------+---------------+---------------+
 *   <lab>-etcd  <lab>-h1          <lab>-h2          <lab>-h3
 *   etcd        weft run          weft run          weft run
 *               fd77::11/64       fd77::12/64       fd77::13 removed by this test (link-local only)
 *
 * Config {"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"alloc"}}.
 * Checks the etcd keys and values and the subnet.env byte for byte against flanneld's format,
 * peers learning each other's IPv6 subnet, restart and previous-subnet reuse for both families,
 * docker-opts and leases, and h3's clear refusal naming its interface.
 */
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { startDaemon as spawnDaemon, weftCliPath } from "../../src/lab/lab-daemon.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { isAlive } from "../../src/process/pids.js";
import { etcdGet as etcdGetIn } from "../support/lab-etcd.js";
import { useLab } from "../support/lab.js";

const PREFIX = "/coreos.com/network";
const IPV6 = { h1: "fd77::11", h2: "fd77::12" } as const;

const lab = useLab("wt6", { hosts: 3, containersPerHost: 0, backend: "alloc", ipv6: true, deferredHosts: ["h1", "h2", "h3"] });
beforeAll(async () => {
  for (const [host, address] of Object.entries(IPV6)) expect(lab().host(host).state.underlayAddressV6).toBe(address);
  const h3 = lab().host("h3").state;
  await lab().exec("h3", "ip", ["addr", "del", `${h3.underlayAddressV6}/64`, "dev", h3.underlayDevice]);
  await Promise.all(["h1", "h2"].map((host) => lab().startDaemon(host)));
}, 120_000);

const etcdGet = (key: string) => etcdGetIn(lab(), key);

/** The host's dual-stack lease key, read from its subnet file (flanneld's FLANNEL_SUBNET/FLANNEL_IPV6_SUBNET). */
async function keyOf(host: string): Promise<{ key: string; env: string }> {
  const env = await readFile(lab().host(host).state.subnetFile, "utf8");
  const v4 = /FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24/.exec(env)?.[1];
  const v6 = /FLANNEL_IPV6_SUBNET=(fd66:0:0:[0-9a-f]+::)1\/64/.exec(env)?.[1];
  if (!v4 || !v6) throw new Error(`${host}: no dual-stack subnet file: ${env}`);
  return { key: `${PREFIX}/subnets/${v4}.0-24&${v6}-64`, env };
}

function weft(args: string[]) {
  return execInNamespace(lab().namespaceOf("etcd"), process.execPath, [weftCliPath(), ...args, `--etcd-endpoints=${lab().etcdEndpoint}`]);
}

const log = (host: string) => readFile(lab().host(host).state.logFile, "utf8");

describe("dual-stack alloc daemons", () => {
  it("write flanneld's dual-stack keys, values and subnet.env byte for byte", async () => {
    const listing = await lab().etcdctl(["get", "--prefix", PREFIX]);
    if (process.env.WEFT_DUAL_STACK_ETCD_DUMP) await writeFile(process.env.WEFT_DUAL_STACK_ETCD_DUMP, listing.stdout);
    for (const host of ["h1", "h2"] as const) {
      const { key, env } = await keyOf(host);
      expect(key).toMatch(/^\/coreos\.com\/network\/subnets\/10\.66\.\d+\.0-24&fd66:0:0:[0-9a-f]+::-64$/);
      // What flanneld's host-gw writes for a dual-stack host (its alloc backend writes no PublicIPv6;
      // weft's alloc advertises like every backend): PublicIPv6 a string in Go's form, no BackendV6Data for alloc.
      expect(listing.stdout).toContain(`${key}\n{"PublicIP":"${lab().host(host).underlayAddress}","PublicIPv6":"${IPV6[host]}","BackendType":"alloc"}\n`);
      const v4 = /FLANNEL_SUBNET=(\S+)/.exec(env)![1];
      const v6 = /FLANNEL_IPV6_SUBNET=(\S+)/.exec(env)![1];
      expect(env).toBe(`FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=${v4}\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=${v6}\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n`);
      const stored = await etcdGet(key);
      const ttl = await lab().etcdctl(["lease", "timetolive", BigInt(stored!.lease).toString(16)]);
      expect(ttl.stdout).toMatch(/granted with TTL\(86400s\)/);
    }
    expect((await keyOf("h1")).key).not.toBe((await keyOf("h2")).key);
    expect(await log("h1")).toMatch(/"msg":"using interface \S+ \(192\.168\.77\.\d+\), public IP 192\.168\.77\.\d+, IPv6 fd77::11, public IPv6 fd77::11"/);
    expect(await log("h1")).not.toMatch(/public-ipv6 is ignored|EnableIPv6 is ignored/);
  });

  it("learn each other's IPv6 subnet and PublicIPv6 as peers", async () => {
    const h2 = (await keyOf("h2")).key;
    const ipv6Subnet = /&(.+)-64$/.exec(h2)![1];
    await expect.poll(() => log("h1"), { timeout: 10_000 }).toMatch(new RegExp(`"ipv6Subnet":"${ipv6Subnet}/64","publicIP":"${lab().host("h2").underlayAddress.replace(/\./g, "\\.")}","publicIPv6":"fd77::12".*"msg":"peer added"`));
  });

  it("show both families in weft leases and docker-opts", async () => {
    const { key } = await keyOf("h1");
    // v4 "10.66.90.0", v6 "fd66:0:0:d::"
    const [v4, v6] = /subnets\/(.+)-24&(.+)-64$/.exec(key)!.slice(1) as [string, string];
    const bip = v4.replace(/\.0$/, ".1");
    const table = (await weft(["leases"])).stdout;
    expect(table).toMatch(/^SUBNET\s+IPV6 SUBNET\s+PUBLIC IP\s+PUBLIC IPV6\s+BACKEND/);
    expect(table).toMatch(new RegExp(`${v4.replace(/\./g, "\\.")}/24\\s+${v6}/64\\s+192\\.168\\.77\\.\\d+\\s+fd77::11\\s+alloc`));
    const json = JSON.parse((await weft(["leases", "--json"])).stdout) as { key: string; ipv6Subnet: string | null; publicIPv6: string | null }[];
    expect(json.find((row) => row.key === key)).toMatchObject({ ipv6Subnet: `${v6}/64`, publicIPv6: "fd77::11" });

    const out = `${lab().host("h1").state.stateDir}/docker_opts.env`;
    const result = spawnSync(process.execPath, [weftCliPath(), "docker-opts", "-f", lab().host("h1").state.subnetFile, "-d", out, "-c"], { encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(await readFile(out, "utf8")).toBe(`DOCKER_OPTS=" --bip=${bip}/24 --fixed-cidr-v6=${v6}/64 --ip-masq=true --ipv6 --mtu=1500"\n`);
  });

  it("keep both subnets across a restart, and take both back from subnet.env when the key is gone", async () => {
    const { key } = await keyOf("h1");
    await lab().stopDaemon("h1");
    await lab().startDaemon("h1");
    expect((await keyOf("h1")).key).toBe(key);
    expect(await log("h1")).toContain('"how":"reused-by-public-ip"');

    await lab().stopDaemon("h1");
    await lab().etcdctl(["del", key]);
    await lab().startDaemon("h1");
    expect((await keyOf("h1")).key).toBe(key);
    expect(await log("h1")).toContain('"how":"previous-subnet"');
    expect((await etcdGet(key))?.value).toBe(`{"PublicIP":"${lab().host("h1").underlayAddress}","PublicIPv6":"fd77::11","BackendType":"alloc"}`);
  });

  it("keep a dual-stack reservation (weft reserve --ipv6-subnet) without a TTL across a restart", async () => {
    const { key } = await keyOf("h2");
    const [v4, v6] = /subnets\/(.+)-24&(.+)-64$/.exec(key)!.slice(1) as [string, string];
    const address = lab().host("h2").underlayAddress;
    const missing = await execInNamespace(lab().namespaceOf("etcd"), process.execPath, [weftCliPath(), "reserve", `${v4}/24`, address, `--etcd-endpoints=${lab().etcdEndpoint}`], { allowFailure: true });
    expect(missing.exitCode).not.toBe(0);
    expect(missing.stderr).toMatch(/--ipv6-subnet: missing; the network is dual-stack \(EnableIPv6\), so a reservation needs a \/64 of IPv6Network fd66::\/48 too/);
    const reserved = await weft(["reserve", `${v4}/24`, address, `--ipv6-subnet=${v6}/64`]);
    expect(reserved.stdout).toContain(`reserved ${key} for ${address} (no TTL)`);
    expect((await etcdGet(key))!.lease).toBe("0");
    await lab().stopDaemon("h2");
    await lab().startDaemon("h2");
    expect((await keyOf("h2")).key).toBe(key);
    expect((await etcdGet(key))!.lease).toBe("0");
    expect(await log("h2")).toContain('"how":"reservation"');
    // Found by its IPv4 subnet alone; the running owner leases it again with a TTL.
    expect((await weft(["unreserve", `${v4}/24`])).stdout).toContain(`removed the reservation ${key}`);
    await expect.poll(async () => (await etcdGet(key))?.lease ?? "missing", { timeout: 10_000 }).not.toMatch(/^(0|missing)$/);
  });

  it("refuse to start on a host whose interface has no usable IPv6 address, naming the interface", async () => {
    const host = lab().host("h3").state;
    const pid = await spawnDaemon(lab().state, host);
    await expect.poll(() => isAlive(pid), { timeout: 20_000 }).toBe(false);
    const text = await log("h3");
    expect(text).toMatch(new RegExp(`interface ${host.underlayDevice} \\(--iface=${host.underlayDevice}\\) has no usable IPv6 address .*(only link-local|it has none).*EnableIPv6`));
    host.daemonPid = undefined;
    // It leased nothing: only h1's and h2's keys are there.
    const keys = (await lab().etcdctl(["get", "--prefix", "--keys-only", `${PREFIX}/subnets/`])).stdout.split("\n").filter(Boolean);
    expect(keys).toHaveLength(2);
  });
});
