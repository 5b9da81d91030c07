/*
 * Pure parts of `weft lab up --docker`, no dockerd is started. The plan under test:
 *
 *   demo-h2 (netns)
 *   +- dockerd --data-root=/tmp/x/h2/docker/data --exec-root=…/exec --host=unix://…/docker.sock
 *   |          --bip=$FLANNEL_SUBNET --ip-masq=<inverted FLANNEL_IPMASQ> --mtu=$FLANNEL_MTU
 *   |   (or: docker network create --subnet=<network> --gateway=<FLANNEL_SUBNET's address> …)
 *   +- h2c1: busybox httpd :80, /cgi-bin/whoami → "h2c1 <REMOTE_ADDR>"
 *
 * plus the mountinfo parser and the cgroup names teardown uses.
 */
import { describe, expect, it } from "vitest";
import { isLabCgroup } from "../../src/lab/cgroups.js";
import {
  containerRunArgs,
  containerScript,
  dockerNetworkCreateArgs,
  dockerdArgs,
  dockerdConfigText,
  fetchCommand,
  parseWhoami,
  planDockerd,
} from "../../src/lab/docker-plan.js";
import { inspectedContainer, overlayAddresses } from "../../src/lab/lab-docker.js";
import { parseMountsUnder } from "../../src/lab/mounts.js";
import { allNamespaces, createdNamespaces, planTopology } from "../../src/lab/topology-plan.js";
import { parseSubnetEnv } from "../../src/host/subnet-env.js";

const env = parseSubnetEnv("FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n", "subnet.env");
const dockerd = planDockerd("demo", "h2", "/tmp/x/h2");

describe("dockerd of a lab host", () => {
  it("keeps every file under the host's docker dir", () => {
    expect(dockerd).toEqual({
      dir: "/tmp/x/h2/docker",
      configFile: "/tmp/x/h2/docker/daemon.json",
      dataRoot: "/tmp/x/h2/docker/data",
      execRoot: "/tmp/x/h2/docker/exec",
      pidFile: "/tmp/x/h2/docker/dockerd.pid",
      socket: "/tmp/x/h2/docker/docker.sock",
      logFile: "/tmp/x/h2/docker/dockerd.log",
      cgroupParent: "weft-lab-demo-h2",
    });
    expect(JSON.parse(dockerdConfigText(dockerd))).toEqual({ "deprecated-key-path": "/tmp/x/h2/docker/key.json" });
  });

  it("refuses a lab dir too long for containerd's unix socket", () => {
    expect(() => planDockerd("demo", "h1", `/tmp/${"x".repeat(80)}/h1`)).toThrow(/unix socket path limit/);
  });

  it("takes --bip, the inverted --ip-masq and --mtu from subnet.env, as mk-docker-opts does", () => {
    expect(dockerdArgs(dockerd, env, "bip")).toEqual([
      "--config-file=/tmp/x/h2/docker/daemon.json",
      "--data-root=/tmp/x/h2/docker/data",
      "--exec-root=/tmp/x/h2/docker/exec",
      "--pidfile=/tmp/x/h2/docker/dockerd.pid",
      "--host=unix:///tmp/x/h2/docker/docker.sock",
      "--cgroup-parent=weft-lab-demo-h2",
      "--exec-opt=native.cgroupdriver=cgroupfs",
      "--iptables=true",
      "--userland-proxy=false",
      "--bip=10.66.5.1/24",
      "--ip-masq=false",
      "--mtu=1450",
    ]);
    const noMasq = { ...env, ipMasq: false };
    expect(dockerdArgs(dockerd, noMasq, "bip")).toContain("--ip-masq=true");
  });

  it("leaves docker0 alone in mode network and creates the network on FLANNEL_SUBNET instead", () => {
    expect(dockerdArgs(dockerd, env, "network").some((arg) => /^--(bip|mtu|ip-masq)/.test(arg))).toBe(false);
    expect(dockerNetworkCreateArgs(env)).toEqual([
      "network", "create", "--driver=bridge", "--subnet=10.66.5.0/24", "--gateway=10.66.5.1",
      "-o", "com.docker.network.driver.mtu=1450",
      "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
      "weft",
    ]);
    expect(() => dockerNetworkCreateArgs({ ...env, mtu: undefined })).toThrow(/FLANNEL_MTU/);
  });
});

describe("dockerd of a dual-stack or IPv6-only lab host", () => {
  const dualStack = parseSubnetEnv(
    "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.5.1/24\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:5::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n",
    "subnet.env",
  );
  const ipv6Only = parseSubnetEnv("FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:5::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n", "subnet.env");

  it("adds --ipv6 --fixed-cidr-v6 (as weft docker-opts) and --experimental --ip6tables", () => {
    const args = dockerdArgs(dockerd, dualStack, "bip");
    expect(args.slice(9)).toEqual(["--experimental", "--ip6tables", "--bip=10.66.5.1/24", "--fixed-cidr-v6=fd66:0:0:5::/64", "--ip-masq=false", "--ipv6", "--mtu=1430"]);
    expect(dockerdArgs(dockerd, env, "bip")).not.toContain("--ip6tables");
    // --no-docker-ip6tables: exactly what `weft docker-opts` writes.
    expect(dockerdArgs(dockerd, dualStack, "bip", false).slice(9)).toEqual(["--bip=10.66.5.1/24", "--fixed-cidr-v6=fd66:0:0:5::/64", "--ip-masq=false", "--ipv6", "--mtu=1430"]);
  });

  it("IPv6-only: no --bip (Docker keeps its host-local 172.17.0.1/16), IPv6 from FLANNEL_IPV6_SUBNET", () => {
    expect(dockerdArgs(dockerd, ipv6Only, "bip").slice(9)).toEqual(["--experimental", "--ip6tables", "--fixed-cidr-v6=fd66:0:0:5::/64", "--ip-masq=false", "--ipv6", "--mtu=1430"]);
    expect(() => dockerdArgs(dockerd, { mtu: 1450 }, "bip")).toThrow(/neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET/);
  });

  it("creates the Docker network with both subnets, or the IPv6 one alone", () => {
    expect(dockerNetworkCreateArgs(dualStack)).toEqual([
      "network", "create", "--driver=bridge", "--subnet=10.66.5.0/24", "--gateway=10.66.5.1",
      "--ipv6", "--subnet=fd66:0:0:5::/64", "--gateway=fd66:0:0:5::1",
      "-o", "com.docker.network.driver.mtu=1430",
      "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
      "weft",
    ]);
    expect(dockerNetworkCreateArgs(ipv6Only).slice(3, 6)).toEqual(["--ipv6", "--subnet=fd66:0:0:5::/64", "--gateway=fd66:0:0:5::1"]);
    expect(() => dockerNetworkCreateArgs({ mtu: 1450 })).toThrow(/neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET/);
  });

  const inspect = (network: Record<string, unknown>) =>
    JSON.stringify([{ Id: "abc123", State: { Pid: 4242 }, NetworkSettings: { Networks: { bridge: network } } }]);

  it("reads both addresses from docker inspect and keeps only the overlay ones", () => {
    const dual = inspectedContainer(inspect({ IPAddress: "10.66.5.2", IPPrefixLen: 24, GlobalIPv6Address: "fd66:0:0:5:0:242:a42:502", GlobalIPv6PrefixLen: 64 }), "bridge");
    expect(dual).toEqual({ id: "abc123", pid: 4242, address: "10.66.5.2", prefixLength: 24, addressV6: "fd66:0:0:5:0:242:a42:502", prefixLengthV6: 64 });
    // In canonical form (RFC 5952: the longest zero run compressed), as `ip` and ping print it.
    expect(overlayAddresses("h2c1", dual, dualStack, "bridge")).toEqual({ address: "10.66.5.2", prefixLength: 24, addressV6: "fd66::5:0:242:a42:502", prefixLengthV6: 64 });
    const local = inspectedContainer(inspect({ IPAddress: "172.17.0.2", IPPrefixLen: 16, GlobalIPv6Address: "fd66:0:0:5::2", GlobalIPv6PrefixLen: 64 }), "bridge");
    // IPv6-only: Docker's host-local IPv4 is not an overlay address.
    expect(overlayAddresses("h2c1", local, ipv6Only, "bridge")).toEqual({ addressV6: "fd66:0:0:5::2", prefixLengthV6: 64 });
  });

  it("refuses a container whose address is missing or outside the host's subnet, naming both", () => {
    const noV6 = inspectedContainer(inspect({ IPAddress: "10.66.5.2", IPPrefixLen: 24, GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0 }), "bridge");
    expect(noV6.addressV6).toBeUndefined();
    expect(() => overlayAddresses("h2c1", noV6, dualStack, "bridge")).toThrow(/h2c1 .* IPv6 address none, not one in the host's FLANNEL_IPV6_SUBNET fd66:0:0:5::\/64/);
    const wrong = inspectedContainer(inspect({ IPAddress: "172.17.0.2", IPPrefixLen: 16 }), "bridge");
    expect(() => overlayAddresses("h2c1", wrong, env, "bridge")).toThrow(/IPv4 address 172\.17\.0\.2, not one in the host's FLANNEL_SUBNET 10\.66\.5\.0\/24/);
    expect(() => inspectedContainer(inspect({ IPAddress: "10.66.5.2" }), "weft")).toThrow(/not attached to network "weft"|attached to network "weft"/);
  });
});

describe("lab containers", () => {
  it("run busybox httpd with a whoami CGI, PID 1 trapping TERM", () => {
    const args = containerRunArgs("h2c1", "weft-lab-busybox:1", "weft");
    expect(args.slice(0, 6)).toEqual(["run", "--detach", "--name=h2c1", "--hostname=h2c1", "--network=weft", "weft-lab-busybox:1"]);
    expect(args.slice(6, 8)).toEqual(["sh", "-c"]);
    const script = containerScript("h2c1");
    expect(script).toMatch(/^trap 'exit 0' TERM\n/);
    expect(script).toContain("echo 'echo h2c1 $REMOTE_ADDR' >> /www/cgi-bin/whoami");
    expect(script).toContain("httpd -f -p 80 -h /www &");
    expect(containerRunArgs("h1c1", "img")).not.toContainEqual(expect.stringMatching(/^--network/));
    expect(() => containerScript("h1c1; rm -rf /")).toThrow(/letters and digits/);
  });

  it("are fetched with busybox's timeout around wget, and the answer names server and seen source", () => {
    expect(fetchCommand("10.66.5.2")).toEqual(["timeout", "3", "wget", "-q", "-O-", "http://10.66.5.2:80/cgi-bin/whoami"]);
    expect(parseWhoami("h2c1 [::ffff:10.66.81.2]\n")).toEqual({ name: "h2c1", remoteAddress: "10.66.81.2" });
    expect(parseWhoami("h2c1 10.66.81.2")).toEqual({ name: "h2c1", remoteAddress: "10.66.81.2" });
    expect(parseWhoami("<html>404</html>")).toBeUndefined();
    expect(fetchCommand("fd66:0:0:5::2")).toEqual(["timeout", "3", "wget", "-q", "-O-", "http://[fd66:0:0:5::2]:80/cgi-bin/whoami"]);
    expect(parseWhoami("h2c1 [fd66:0:0:5:0:0:0:2]\n")).toEqual({ name: "h2c1", remoteAddress: "fd66:0:0:5::2" });
    expect(parseWhoami("h2c1 [fd66::zz]")).toBeUndefined();
  });

  it("get no namespace or veth from the lab: dockerd makes them, attached under the usual names", () => {
    const base = { name: "demo", labDir: "/tmp/x", backend: "vxlan", internet: false, ipMasq: true, daemons: "weft" as const, underlayMtu: 1500 };
    const state = planTopology({ ...base, hosts: 2, containersPerHost: 1, docker: "bip" });
    expect(state.docker).toEqual({ mode: "bip", image: "weft-lab-busybox:1", imageTar: "/tmp/x/image/busybox.tar", ip6tables: true });
    expect(planTopology({ ...base, hosts: 1, containersPerHost: 1, docker: "bip", dockerIp6tables: false }).docker?.ip6tables).toBe(false);
    expect(state.containers.map((container) => container.hostVeth)).toEqual([undefined, undefined]);
    expect(allNamespaces(state)).toContain("demo-h1c1");
    expect(createdNamespaces(state)).toEqual(["demo-ul", "demo-etcd", "demo-h1", "demo-h2"]);
    expect(state.hosts[1]?.dockerd?.socket).toBe("/tmp/x/h2/docker/docker.sock");
    const plain = planTopology({ ...base, hosts: 1, containersPerHost: 1 });
    expect(plain.docker).toBeUndefined();
    expect(createdNamespaces(plain)).toEqual(allNamespaces(plain));
  });
});

describe("teardown helpers", () => {
  it("finds the mounts under a dir, deepest first, unescaping mountinfo paths", () => {
    const mountinfo = [
      "65 27 254:0 /tmp/l/h1/docker/data /tmp/l/h1/docker/data rw,relatime shared:6 - ext4 /dev/vda rw",
      "80 65 0:43 / /tmp/l/h1/docker/data/overlay2/abc/merged rw,relatime shared:8 - overlay overlay rw,lowerdir=x",
      "152 27 0:4 net:[4026532474] /tmp/l/h1/docker/exec/netns/44f6 rw - nsfs nsfs rw",
      "153 27 0:4 net:[1] /tmp/l/h1/dockerx rw - nsfs nsfs rw",
      "154 27 0:4 / /tmp/l/h1/docker/with\\040space rw - tmpfs tmpfs rw",
      "49 45 0:4 net:[4026532385] /run/netns/dkx-h2 rw shared:5 - nsfs nsfs rw",
    ].join("\n");
    expect(parseMountsUnder(mountinfo, "/tmp/l/h1/docker/")).toEqual([
      { mountPoint: "/tmp/l/h1/docker/data/overlay2/abc/merged", fsType: "overlay" },
      { mountPoint: "/tmp/l/h1/docker/exec/netns/44f6", fsType: "nsfs" },
      { mountPoint: "/tmp/l/h1/docker/with space", fsType: "tmpfs" },
      { mountPoint: "/tmp/l/h1/docker/data", fsType: "ext4" },
    ]);
  });

  it("recognises only this lab's container cgroup parents", () => {
    expect(isLabCgroup("demo", "weft-lab-demo-h1")).toBe(true);
    expect(isLabCgroup("demo", "weft-lab-demo-h12")).toBe(true);
    expect(isLabCgroup("demo", "weft-lab-demo-x-h1")).toBe(false);
    expect(isLabCgroup("demo", "docker")).toBe(false);
    expect(isLabCgroup("de", "weft-lab-demo-h1")).toBe(false);
  });
});
