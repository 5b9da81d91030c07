/*
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *          +-----------------+-----------------------+-----------------------+
 *     <p>-etcd .2       <p>-h1 .11                <p>-h2 .12
 *     real etcd         weft run --ip-masq        weft run --ip-masq          (vxlan)
 *                       dockerd (nsenter --net)   dockerd (nsenter --net)
 *                       --bip=$FLANNEL_SUBNET     --bip=$FLANNEL_SUBNET
 *                       --mtu=$FLANNEL_MTU        --mtu=$FLANNEL_MTU
 *                       FORWARD DROP (by Docker), weft's WEFT-FWD jump in DOCKER-USER
 *                         docker0                   docker0
 *                           |                         |
 *                     container h1c1            container h2c1      busybox httpd :80,
 *                     (netns <p>-h1c1)          (netns <p>-h2c1)    image built locally
 *
 * A real dockerd per host (Debian's docker.io; .ci/run installs it and busybox-static): the
 * containers ping and fetch each other across hosts, the server sees the client's own address
 * (no NAT on the overlay), weft's forward rules are what lets traffic through Docker's FORWARD
 * DROP, and `lab down` leaves no process, namespace, mount or cgroup behind. The second lab
 * does the same with flannel's alternative recipe: a `docker network create` network instead
 * of docker0. Needs a build (npm run build:ts): the daemons run dist/cli.js.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildLab, teardownLab, type Lab } from "../../src/lab/lab.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { forwardRulesHooked, waitForwardRulesHooked } from "../../src/lab/lab-docker.js";
import { uniquePrefix } from "../../src/lab/netns.js";
import { pingFrom } from "../../src/lab/ping.js";
import { readSubnetEnv } from "../../src/host/subnet-env.js";
import { formatIpv4 } from "../../src/net/ipv4.js";
import { dockerdCmdline, downAndExpectNothingLeft } from "../support/docker-lab.js";

describe("lab with a real dockerd per host (--bip/--mtu from subnet.env)", () => {
  const name = uniquePrefix("wd").slice(0, -1);
  const labDir = join(tmpdir(), `weft-lab-docker-${name}`);
  let lab: Lab;

  beforeAll(async () => {
    if (!existsSync(weftCliPath())) throw new Error(`${weftCliPath()} is missing: run \`npm run build:ts\` first`);
    lab = await buildLab({ name, labDir, hosts: 2, containersPerHost: 1, backend: "vxlan", ipMasq: true, docker: "bip" });
  });

  afterAll(async () => {
    await teardownLab({ name, labDir });
    await rm(labDir, { recursive: true, force: true });
  });

  it("starts dockerd with its host's subnet.env as --bip and --mtu, and its containers on docker0", async () => {
    for (const host of lab.hosts) {
      const env = await readSubnetEnv(host.state.subnetFile);
      const bip = `${formatIpv4(env?.subnetAddress?.address ?? 0)}/${env?.subnetAddress?.prefixLength}`;
      const cmdline = dockerdCmdline(lab, host.name);
      expect(cmdline).toEqual(expect.arrayContaining([`--bip=${bip}`, "--mtu=1450", "--ip-masq=false", `--data-root=${labDir}/${host.name}/docker/data`]));
      const docker0 = await host.exec("ip", ["-j", "address", "show", "docker0"]);
      const [link] = JSON.parse(docker0.stdout) as { mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] }[];
      expect(link?.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual([bip]);
      const ps = await host.docker(["ps", "--format", "{{.Names}} {{.Image}}"]);
      expect(ps.stdout.trim()).toBe(`${host.name}c1 weft-lab-busybox:1`);
    }
    const container = lab.container("h2c1");
    expect(container.address?.startsWith(lab.host("h2").state.subnet?.split(".").slice(0, 3).join(".") ?? "-")).toBe(true);
    expect((await container.exec("cat", ["/sys/class/net/eth0/mtu"])).stdout.trim()).toBe("1450");
  });

  it("pings and fetches across hosts, and the server sees the client's own address", async () => {
    const { ok, results, table } = await lab.checkTable();
    expect(table).toMatch(/all 6 checks passed/);
    expect(ok).toBe(true);
    const fetches = results.filter((result) => result.kind === "http");
    expect(fetches.map((result) => `${result.from}->${result.to}`)).toEqual(["h1c1->h2c1", "h2c1->h1c1"]);
    for (const result of fetches) expect(result.seenAs).toBe(result.fromAddress);
  });

  it("needs weft's jump in DOCKER-USER: Docker set FORWARD to DROP", async () => {
    const h2 = lab.host("h2");
    expect((await h2.exec("iptables", ["-S", "FORWARD"])).stdout).toContain("-P FORWARD DROP");
    expect(await forwardRulesHooked(h2.state)).toBe(true);
    const target = lab.container("h2c1").address as string;
    const from = lab.container("h1c1").namespace;

    await lab.stopDaemon("h2"); // Its kernel state (vxlan, routes, rules) stays, as on a real host.
    await h2.exec("iptables", ["-D", "DOCKER-USER", "-m", "comment", "--comment", "weft forward", "-j", "WEFT-FWD"]);
    expect((await pingFrom(from, target, { count: 1, waitSeconds: 1 })).received).toBe(0);

    await lab.startDaemon("h2"); // Same lease, so dockerd keeps running; weft hooks in again.
    await waitForwardRulesHooked(h2.state, (await readSubnetEnv(h2.state.subnetFile)) ?? {});
    expect((await pingFrom(from, target, { count: 1, waitSeconds: 1 })).received).toBe(1);
    const fetch = await lab.host("h1").docker(["exec", "h1c1", "timeout", "3", "wget", "-q", "-O-", `http://${target}/cgi-bin/whoami`]);
    expect(fetch.stdout.trim()).toMatch(/^h2c1 /);
  });

  it("lab down stops every dockerd with its containerd and shims and leaves nothing behind", async () => {
    await downAndExpectNothingLeft(lab, name, labDir);
  });
});

describe("lab with flannel's alternative recipe (docker network create on FLANNEL_SUBNET)", () => {
  const name = uniquePrefix("wn").slice(0, -1);
  const labDir = join(tmpdir(), `weft-lab-docker-${name}`);
  let lab: Lab;

  beforeAll(async () => {
    lab = await buildLab({ name, labDir, hosts: 2, containersPerHost: 1, backend: "vxlan", ipMasq: true, docker: "network" });
  });

  afterAll(async () => {
    await teardownLab({ name, labDir });
    await rm(labDir, { recursive: true, force: true });
  });

  it("leaves docker0 alone, puts the containers on the network, and passes the same checks", async () => {
    const h1 = lab.host("h1");
    const docker0 = await h1.exec("ip", ["-4", "-o", "address", "show", "docker0"]);
    expect(docker0.stdout).toContain("172.17.0.1/16"); // dockerd's default: not the host's subnet
    const network = await h1.docker(["network", "inspect", "weft", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Options \"com.docker.network.driver.mtu\"}}"]);
    expect(network.stdout.trim()).toBe(`${h1.state.subnet} ${h1.state.bridgeAddress?.split("/")[0]} 1450`);
    const { ok, results, table } = await lab.checkTable();
    expect(table).toMatch(/all 6 checks passed/);
    expect(ok).toBe(true);
    for (const result of results.filter((r) => r.kind === "http")) expect(result.seenAs).toBe(result.fromAddress);
  });

  it("lab down leaves nothing behind", async () => {
    await downAndExpectNothingLeft(lab, name, labDir);
  });
});
