/*
 * `weft docker-opts` as a unit file runs it: the built CLI, real files, and the routing-table
 * check inside a namespace the test creates.
 *
 *   netns <p>-dk
 *   ┌──────────────────────────────────────────────────────────────┐
 *   │ up0 192.168.50.2/24 (veth, peer up0p)                        │
 *   │ routes: 10.66.36.0/24 via 192.168.50.1   (conflict)           │
 *   │         10.66.37.0/24 dev up0            (no via: no conflict)│
 *   │ up0 fd50::2/64; fd66:0:0:6::/64 via fd50::1   (IPv6 conflict)  │
 *   └──────────────────────────────────────────────────────────────┘
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = resolve("dist/cli.js");
const ns = `wt${randomBytes(2).toString("hex")}-dk`;
let dir: string;

function weft(args: string[], options: { env?: Record<string, string>; netns?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const command = options.netns ? ["ip", ["netns", "exec", options.netns, process.execPath, CLI, ...args]] as const : [process.execPath, [CLI, ...args]] as const;
  // A clean environment: the script reads DOCKER_OPT_* and FLANNEL_* from it.
  const result = spawnSync(command[0], [...command[1]], { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env }, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; run \`npm run build:ts\` first`);
  dir = await mkdtemp(join(tmpdir(), "weft-docker-opts-cli-"));
  execFileSync("ip", ["netns", "add", ns]);
  const ip = (...args: string[]): void => void execFileSync("ip", ["-n", ns, ...args]);
  ip("link", "add", "up0", "type", "veth", "peer", "name", "up0p");
  ip("addr", "add", "192.168.50.2/24", "dev", "up0");
  ip("link", "set", "up0p", "up");
  ip("link", "set", "up0", "up");
  ip("route", "add", "10.66.36.0/24", "via", "192.168.50.1");
  ip("route", "add", "10.66.37.0/24", "dev", "up0");
  ip("addr", "add", "fd50::2/64", "dev", "up0", "nodad");
  ip("-6", "route", "add", "fd66:0:0:6::/64", "via", "fd50::1");
});

afterAll(async () => {
  try {
    execFileSync("ip", ["netns", "del", ns]);
  } catch {
    // beforeAll failed before creating it.
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

const LAB_SUBNET_ENV = "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n";
const LAB_OUTPUT =
  'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\n' +
  'DOCKER_OPTS=" --bip=10.66.36.1/24 --ip-masq=true --mtu=1472"\n';

describe("weft docker-opts", () => {
  it("writes mk-docker-opts.sh's output byte for byte, silently, exit 0", async () => {
    await writeFile(join(dir, "subnet.env"), LAB_SUBNET_ENV);
    const run = weft(["docker-opts", "-f", "subnet.env", "-d", "docker_opts.env"]);
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(await readFile(join(dir, "docker_opts.env"), "utf8")).toBe(LAB_OUTPUT);
  });

  it("the docs' unit form: -k with the variable's value from the environment, attached -d value", async () => {
    await writeFile(join(dir, "subnet.env"), LAB_SUBNET_ENV);
    const run = weft(["docker-opts", "-c", "-kDOCKER_NETWORK_OPTIONS", "-ddocker.env", "-fsubnet.env", "-m"], {
      env: { DOCKER_NETWORK_OPTIONS: "--log-level=warn" },
    });
    expect(run.status).toBe(0);
    expect(await readFile(join(dir, "docker.env"), "utf8")).toBe('DOCKER_NETWORK_OPTIONS="--log-level=warn  --bip=10.66.36.1/24 --mtu=1472"\n');
  });

  it("a bad flag prints the usage on stderr and exits 1 without writing", async () => {
    const run = weft(["docker-opts", "-x", "-d", "never.env"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^weft docker-opts: illegal option -- x\nweft docker-opts \[-f FLANNEL-ENV-FILE\]/);
    expect(existsSync(join(dir, "never.env"))).toBe(false);
    expect(weft(["docker-opts", "-h"]).status).toBe(1);
  });

  it("a bad subnet file exits 1 naming file, line and key", async () => {
    await writeFile(join(dir, "bad.env"), "FLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_IPMASQ=1\n");
    const run = weft(["docker-opts", "-f", "bad.env", "-d", "bad.out"]);
    expect(run).toMatchObject({ status: 1, stderr: 'weft docker-opts: bad.env:2: FLANNEL_IPMASQ="1" is not true or false; fix or delete the file (weft rewrites it)\n' });
  });

  it("refuses, after writing, when the routing table sends the own subnet via a gateway", async () => {
    await writeFile(join(dir, "subnet.env"), LAB_SUBNET_ENV);
    const run = weft(["docker-opts", "-f", "subnet.env", "-d", "routed.env"], { netns: ns });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe("Your routing table already contains the subnet: 10.66.36.0/24 via 192.168.50.1 dev up0\n");
    expect(await readFile(join(dir, "routed.env"), "utf8")).toBe(LAB_OUTPUT);
  });

  it("a connected route (no via) to the own subnet is fine", async () => {
    await writeFile(join(dir, "s37.env"), LAB_SUBNET_ENV.replace("10.66.36.1/24", "10.66.37.1/24"));
    const run = weft(["docker-opts", "-f", "s37.env", "-d", "s37.out", "-i"], { netns: ns });
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(await readFile(join(dir, "s37.out"), "utf8")).toBe('DOCKER_OPT_BIP="--bip=10.66.37.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\n');
  });

  it("a missing subnet file warns and writes the empty combined variable, exit 0 (as the script)", async () => {
    const run = weft(["docker-opts", "-f", "absent.env", "-d", "empty.env"]);
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/warning: no FLANNEL_SUBNET in absent\.env \(file not found\)/);
    expect(await readFile(join(dir, "empty.env"), "utf8")).toBe('DOCKER_OPTS=""\n');
  });

  it("an IPv6-only subnet file: no --bip (as the script), --ipv6 --fixed-cidr-v6, no missing-subnet warning; its route conflict is found with ip -6", async () => {
    const v6only = "FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:7::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n";
    await writeFile(join(dir, "v6only.env"), v6only);
    const run = weft(["docker-opts", "-f", "v6only.env", "-d", "v6only.out"], { netns: ns });
    expect(run).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(await readFile(join(dir, "v6only.out"), "utf8")).toBe(
      'DOCKER_OPT_FIXED_CIDR_V6="--fixed-cidr-v6=fd66:0:0:7::/64"\nDOCKER_OPT_IPMASQ="--ip-masq=false"\nDOCKER_OPT_IPV6="--ipv6"\nDOCKER_OPT_MTU="--mtu=1430"\n' +
        'DOCKER_OPTS=" --fixed-cidr-v6=fd66:0:0:7::/64 --ip-masq=false --ipv6 --mtu=1430"\n',
    );
    await writeFile(join(dir, "v6routed.env"), v6only.replace("fd66:0:0:7::1/64", "fd66:0:0:6::1/64"));
    const routed = weft(["docker-opts", "-f", "v6routed.env", "-d", "v6routed.out"], { netns: ns });
    expect(routed.status).toBe(1);
    expect(routed.stderr).toMatch(/^Your routing table already contains the subnet: fd66:0:0:6::\/64 via fd50::1 dev up0/);
  });
});
