/*
 * A host with no IPv4 at all in an IPv6-only network: the real daemon (dist/cli.js `weft run`,
 * build first), kernel vxlan, a real etcd inside the host's namespace.
 *
 *   netns <p>-a                                         netns <p>-b
 *   ┌───────────────────────────────────────────┐       ┌──────────────────┐
 *   │ lo 127.0.0.1: etcd :2379                   │       │                  │
 *   │ v6a0 fd78::1/64 (no IPv4) ─── veth ──────────────── v6b0 fd78::2/64   │
 *   │      ── ::/0 via fd78::2                   │       │                  │
 *   │ weft run --iface=v6a0 → flannel-v6.1       │       │                  │
 *   └───────────────────────────────────────────┘       └──────────────────┘
 *
 * The daemon picks v6a0 by its IPv6 address alone, leases 0.0.0.0-0&<v6>-64 with PublicIPv6
 * fd78::1, and builds flannel-v6.1 over it (no flannel.1).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdServer } from "../../src/lab/etcd-server.js";
import { parseSubnetEnv } from "../../src/host/subnet-env.js";

const CLI = resolve("dist/cli.js");
const prefix = `wv6h${randomBytes(2).toString("hex")}`;
const nsA = `${prefix}-a`;
const nsB = `${prefix}-b`;
let dir: string;
let etcd: EtcdServer | undefined;
let daemon: ChildProcess | undefined;
let log = "";

const ip = (ns: string, ...args: string[]): string => execFileSync("ip", ["-n", ns, ...args], { encoding: "utf8" });
const weftIn = (args: string[]): string => execFileSync("ip", ["netns", "exec", nsA, process.execPath, CLI, ...args, `--etcd-endpoints=${etcd!.endpoint}`], { encoding: "utf8" });

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; run \`npm run build:ts\` first`);
  dir = await mkdtemp(join(tmpdir(), "weft-ipv6-only-host-"));
  for (const ns of [nsA, nsB]) execFileSync("ip", ["netns", "add", ns]);
  ip(nsA, "link", "set", "lo", "up");
  ip(nsA, "link", "add", "v6a0", "type", "veth", "peer", "name", "v6b0", "netns", nsB);
  ip(nsA, "addr", "add", "fd78::1/64", "dev", "v6a0", "nodad");
  ip(nsB, "addr", "add", "fd78::2/64", "dev", "v6b0", "nodad");
  ip(nsA, "link", "set", "v6a0", "up");
  ip(nsB, "link", "set", "v6b0", "up");
  ip(nsA, "-6", "route", "add", "default", "via", "fd78::2", "dev", "v6a0");
  etcd = await EtcdServer.start({ netns: nsA });
  weftIn(["config", "set", '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}']);
  daemon = spawn("ip", [
    "netns", "exec", nsA, process.execPath, CLI, "run", `--etcd-endpoints=${etcd.endpoint}`, "--iface=v6a0",
    `--subnet-file=${join(dir, "subnet.env")}`, `--state-dir=${join(dir, "state")}`, "--healthz-port=0",
  ]);
  daemon.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  daemon.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
}, 60_000);

afterAll(async () => {
  if (daemon?.pid !== undefined && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((done) => daemon?.once("exit", done));
  }
  await etcd?.stop();
  for (const ns of [nsA, nsB]) {
    try {
      execFileSync("ip", ["netns", "del", ns]);
    } catch {
      // Not created: beforeAll failed early.
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("an IPv6-only host (no IPv4 on its interface) in an IPv6-only network", () => {
  it("selects v6a0 by IPv6, leases 0.0.0.0-0&<v6> with PublicIPv6 fd78::1 and builds flannel-v6.1 over it", async () => {
    await expect.poll(() => readFile(join(dir, "subnet.env"), "utf8").catch(() => ""), { timeout: 20_000, interval: 200 }).toMatch(/FLANNEL_IPV6_SUBNET=/);
    const env = parseSubnetEnv(await readFile(join(dir, "subnet.env"), "utf8"), "subnet.env");
    expect(env.subnetAddress).toBeUndefined();
    expect(env.ipv6Subnet).toMatch(/^fd66:0:0:[0-9a-f]+::1\/64$/);
    expect(env.mtu).toBe(1430);
    expect(log).toMatch(/using interface v6a0 \(no IPv4\), public IP none, IPv6 fd78::1/);
    const leases = JSON.parse(weftIn(["leases", "--json"])) as { key: string; publicIP: string; publicIPv6: string; subnet: string }[];
    expect(leases).toHaveLength(1);
    expect(leases[0]).toMatchObject({ subnet: "-", publicIP: "0.0.0.0", publicIPv6: "fd78::1" });
    expect(leases[0]?.key).toMatch(/^\/coreos\.com\/network\/subnets\/0\.0\.0\.0-0&fd66:0:0:[0-9a-f]+::-64$/);
    const device = ip(nsA, "-d", "link", "show", "flannel-v6.1");
    expect(device).toMatch(/vxlan id 1 local fd78::1 dev v6a0/);
    expect(ip(nsA, "-o", "link", "show")).not.toMatch(/ flannel\.1[:@]/);
    expect(daemon?.exitCode).toBeNull();
  }, 40_000);
});
