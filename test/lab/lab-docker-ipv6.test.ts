/*
 * `lab up --docker --ipv6` and `--docker --ipv6-only`: a real dockerd per host, configured from
 * its subnet.env's FLANNEL_IPV6_SUBNET as `weft docker-opts` says (--ipv6 --fixed-cidr-v6), plus
 * --ip6tables (Docker ≥ 27's default: ip6tables FORWARD DROP).
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11              <p>-h2 .12 fd77::12
 *   real etcd              weft run --ip-masq               weft run --ip-masq
 *                          dockerd --bip=$FLANNEL_SUBNET    (same, its own subnets)
 *                            --ipv6 --fixed-cidr-v6=<FLANNEL_IPV6_SUBNET's /64>
 *                            --ip6tables --experimental --mtu=$FLANNEL_MTU
 *                          docker0 10.66.a.1/24 fd66:0:0:b::1/64
 *                            |
 *                       container h1c1 (netns <p>-h1c1)   busybox httpd :80 (IPv4 and IPv6)
 *
 * Per backend (kernel vxlan, host-gw with flannel's `docker network create` recipe, userspace
 * vxlan): the containers' IPv6 addresses lie in their host's IPv6 subnet, `lab check` pings,
 * DF-pings and fetches across hosts over IPv6 as over IPv4 and the server sees the client's own
 * IPv6 address; for kernel vxlan, taking weft's WEFT-FWD jump out of ip6tables (DOCKER-USER, or
 * FORWARD: dockerd 20.10 makes no DOCKER-USER for IPv6) breaks IPv6, and only IPv6, until weft
 * puts it back. IPv6-only: dockerd keeps its
 * host-local IPv4 bridge (20.10 has no IPv6-only bridge), every check runs over IPv6.
 * `lab down` stops every dockerd by PID and leaves nothing. Needs a build (npm run build:ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildLab, teardownLab, type Lab, type LabDockerMode, type LabOptions } from "../../src/lab/lab.js";
import { formatCheckMatrix, type CheckResult } from "../../src/lab/check.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { forwardRulesHook, forwardRulesHooked, waitForwardRulesHooked } from "../../src/lab/lab-docker.js";
import { uniquePrefix } from "../../src/lab/netns.js";
import { pingFrom } from "../../src/lab/ping.js";
import { previousIpv6Subnet, readSubnetEnv, type SubnetEnv } from "../../src/host/subnet-env.js";
import { parseIpv6 } from "../../src/net/ipv6.js";
import { dockerdCmdline, downAndExpectNothingLeft } from "../support/docker-lab.js";
import { dockerOptions } from "../../src/host/docker-opts.js";

interface Variant {
  title: string;
  backend: string;
  backendOptions?: Record<string, unknown>;
  docker: LabDockerMode;
  ipv6Only?: boolean;
  /** false: dockerd gets only what `weft docker-opts` writes (no --ip6tables). */
  ip6tables?: boolean;
}

async function subnetEnvOf(lab: Lab, hostName: string): Promise<SubnetEnv> {
  const env = await readSubnetEnv(lab.host(hostName).state.subnetFile);
  if (!env?.ipv6Subnet) throw new Error(`host ${hostName}: no FLANNEL_IPV6_SUBNET in ${lab.host(hostName).state.subnetFile}`);
  return env;
}

/** Global IPv6 addresses of a device in a namespace, "address/prefix". */
async function globalIpv6(lab: Lab, target: string, device: string): Promise<string[]> {
  const result = await lab.exec(target, "ip", ["-6", "-j", "address", "show", "dev", device, "scope", "global"]);
  const [link] = JSON.parse(result.stdout) as { addr_info: { local?: string; prefixlen?: number }[] }[];
  // `ip -j` leaves an empty {} in addr_info for each address the scope filter dropped.
  return (link?.addr_info ?? []).filter((info) => info.local !== undefined).map((info) => `${info.local}/${info.prefixlen}`);
}

function dockerIpv6Lab(variant: Variant): void {
  describe(`${variant.title}: a real dockerd per host with IPv6 from FLANNEL_IPV6_SUBNET`, () => {
    const name = uniquePrefix("w6").slice(0, -1);
    const labDir = join(tmpdir(), `weft-lab-docker6-${name}`);
    let lab: Lab;
    let results: CheckResult[] = [];

    beforeAll(async () => {
      if (!existsSync(weftCliPath())) throw new Error(`${weftCliPath()} is missing: run \`npm run build:ts\` first`);
      const options: LabOptions = {
        name,
        labDir,
        hosts: 2,
        containersPerHost: 1,
        backend: variant.backend,
        backendOptions: variant.backendOptions,
        ipv6: true,
        ipv6Only: variant.ipv6Only ?? false,
        ipMasq: true,
        docker: variant.docker,
        dockerIp6tables: variant.ip6tables ?? true,
      };
      lab = await buildLab(options);
    });

    afterAll(async () => {
      // Also after a failure: every dockerd, containerd and shim by PID, every namespace, the dir.
      await teardownLab({ name, labDir });
      await rm(labDir, { recursive: true, force: true });
    });

    it("gives dockerd the host's IPv6 subnet, and every container an address in it", async () => {
      for (const host of lab.hosts) {
        const env = await subnetEnvOf(lab, host.name);
        const subnet = previousIpv6Subnet(env);
        const cmdline = dockerdCmdline(lab, host.name);
        if (variant.ip6tables === false) {
          expect(cmdline).not.toContain("--ip6tables");
          // Nothing of Docker's in ip6tables: the IPv6 FORWARD policy stays ACCEPT.
          expect((await host.exec("ip6tables", ["-S", "FORWARD"])).stdout).toMatch(/^-P FORWARD ACCEPT$/m);
        } else {
          expect(cmdline).toEqual(expect.arrayContaining(["--experimental", "--ip6tables"]));
        }
        if (variant.docker === "bip") expect(cmdline).toEqual(expect.arrayContaining([...dockerOptions(env, false).values()]));
        if (variant.docker === "bip") {
          expect(cmdline).toEqual(expect.arrayContaining(["--ipv6", `--fixed-cidr-v6=${subnet}`]));
          expect(await globalIpv6(lab, host.name, "docker0")).toContain(env.ipv6Subnet);
          expect(cmdline.some((arg) => arg.startsWith("--bip="))).toBe(!variant.ipv6Only);
        } else {
          const ipam = await host.docker(["network", "inspect", "weft", "--format", "{{.EnableIPv6}}{{range .IPAM.Config}} {{.Subnet}} {{.Gateway}}{{end}}"]);
          expect(ipam.stdout.trim()).toContain(`true`);
          expect(ipam.stdout.trim()).toContain(`${subnet} ${env.ipv6Subnet?.split("/")[0]}`);
        }
        for (const container of host.containers()) {
          const address = container.state.addressV6;
          expect(address, container.name).toBeDefined();
          expect(subnet?.containsAddress(parseIpv6(address as string))).toBe(true);
          expect(await globalIpv6(lab, container.name, "eth0")).toEqual([`${address}/64`]);
          const inspect = await host.docker(["inspect", container.name, "--format", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}"]);
          expect(parseIpv6(inspect.stdout.trim())).toBe(parseIpv6(address as string));
          if (variant.ipv6Only) {
            // Docker's own host-local IPv4 bridge: there, but not an overlay address.
            expect(container.state.address).toBeUndefined();
            const v4 = await container.exec("ip", ["-4", "-o", "address", "show", "dev", "eth0"]);
            expect(v4.stdout).toMatch(/inet 172\.(1[6-9]|2\d|3[01])\./);
          }
        }
      }
    });

    it("passes lab check over IPv6 across hosts: ping, the largest DF ping, HTTP with the client's own address", async () => {
      results = await lab.check();
      const matrix = formatCheckMatrix(results);
      console.log(`lab check, ${variant.title}:\n${matrix}`);
      expect(results.filter((result) => !result.ok), matrix).toEqual([]);
      const v6 = results.filter((result) => result.family === 6);
      // 2 containers: 2 pings, 2 DF pings, 2 fetches per family.
      expect(v6.map((result) => result.kind).sort()).toEqual(["df", "df", "http", "http", "ping", "ping"]);
      expect(results.filter((result) => result.family === 4)).toHaveLength(variant.ipv6Only ? 0 : 6);
      for (const result of v6) {
        expect(result.fromAddress).toMatch(/^fd66:/);
        expect(lab.container(result.from).host).not.toBe(lab.container(result.to).host);
      }
      const mtu = lab.container("h1c1").state.mtu as number;
      for (const df of v6.filter((result) => result.kind === "df")) expect(df.payload).toBe(mtu - 48);
      for (const fetch of v6.filter((result) => result.kind === "http")) expect(fetch.seenAs).toBe(fetch.fromAddress);
      expect(matrix).toMatch(/IPv6 ping matrix/);
      expect(matrix).toMatch(/IPv6 HTTP fetch matrix/);
    });

    if (variant.backend === "vxlan" && !variant.backendOptions && !variant.ipv6Only && variant.ip6tables !== false) {
      it("needs weft's ip6tables jump: Docker set the IPv6 FORWARD policy to DROP", async () => {
        const h2 = lab.host("h2");
        expect((await h2.exec("ip6tables", ["-S", "FORWARD"])).stdout).toContain("-P FORWARD DROP");
        // dockerd 20.10 makes no ip6tables DOCKER-USER: weft's jump is then at the top of FORWARD.
        const hook = await forwardRulesHook(h2.state, 6);
        expect(hook).toBeDefined();
        const from = lab.container("h1c1").namespace;
        const target = lab.container("h2c1").state;

        await lab.stopDaemon("h2"); // Its kernel state stays, as on a real host.
        await h2.exec("ip6tables", ["-D", hook as string, "-m", "comment", "--comment", "weft forward", "-j", "WEFT-FWD"]);
        expect(await forwardRulesHooked(h2.state, 6)).toBe(false);
        expect((await pingFrom(from, target.addressV6 as string, { count: 1, waitSeconds: 1 })).received).toBe(0);
        // IPv4 keeps its own jump: only IPv6 is cut.
        expect((await pingFrom(from, target.address as string, { count: 1, waitSeconds: 1 })).received).toBe(1);

        await lab.startDaemon("h2"); // Same lease, so dockerd keeps running; weft hooks in again.
        await waitForwardRulesHooked(h2.state, await subnetEnvOf(lab, "h2"));
        expect((await pingFrom(from, target.addressV6 as string, { count: 1, waitSeconds: 1 })).received).toBe(1);
        const fetch = await lab.host("h1").docker(["exec", "h1c1", "timeout", "3", "wget", "-q", "-O-", `http://[${target.addressV6}]/cgi-bin/whoami`]);
        expect(fetch.stdout.trim()).toMatch(/^h2c1 \[?fd66:/);
      });
    }

    it("lab down stops every dockerd by PID and leaves nothing behind", async () => {
      await downAndExpectNothingLeft(lab, name, labDir);
    });
  });
}

dockerIpv6Lab({ title: "dual-stack, kernel vxlan", backend: "vxlan", docker: "bip" });
dockerIpv6Lab({ title: "dual-stack, kernel vxlan, only weft docker-opts' flags (no --ip6tables)", backend: "vxlan", docker: "bip", ip6tables: false });
dockerIpv6Lab({ title: "dual-stack, host-gw, flannel's docker network recipe", backend: "host-gw", docker: "network" });
dockerIpv6Lab({ title: "dual-stack, userspace vxlan", backend: "vxlan", backendOptions: { Userspace: true }, docker: "bip" });
dockerIpv6Lab({ title: "IPv6-only, kernel vxlan", backend: "vxlan", docker: "bip", ipv6Only: true });
dockerIpv6Lab({ title: "IPv6-only, host-gw, docker network recipe", backend: "host-gw", docker: "network", ipv6Only: true });
