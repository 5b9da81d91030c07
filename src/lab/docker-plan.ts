/*
 * The pure half of `weft lab up --docker`: where each host's dockerd keeps its files, the exact
 * argument lists of dockerd, `docker network create` and `docker run`, and how the containers'
 * HTTP answer is read. No process is started here (tested without root); lab-docker.ts runs them.
 *
 *   <name>-h1 (network namespace; dockerd entered with nsenter --net, so mounts stay in the
 *   |          machine's mount namespace and under <labDir>/h1/docker/ where teardown finds them)
 *   +- dockerd --data-root --exec-root --pidfile --host=unix://… --config-file (all under h1/docker)
 *   |          "bip":     --bip=$FLANNEL_SUBNET --ip-masq=<inverse of FLANNEL_IPMASQ> --mtu=$FLANNEL_MTU
 *   |                     (+ --ipv6 --fixed-cidr-v6=<FLANNEL_IPV6_SUBNET's network> in a dual-stack or IPv6-only lab)
 *   |          "network": docker0 left alone; docker network create --subnet --gateway -o …mtu=$FLANNEL_MTU
 *   |                     (+ --ipv6 --subnet=<IPv6 subnet> --gateway=<its ::1>)
 *   |          IPv6: --experimental --ip6tables too, see dockerdArgs
 *   +- containerd (dockerd's own, under the exec-root) -> shims -> containers h1c1, h1c2 …
 *        each: busybox httpd on :80 with /cgi-bin/whoami ("<name> <REMOTE_ADDR>"),
 *        its network namespace attached as <name>-h1c1 (so lab exec, ping and teardown find it)
 */
import { join } from "node:path";
import { dockerOptions } from "../host/docker-opts.js";
import { previousIpv6Subnet, type SubnetEnv } from "../host/subnet-env.js";
import { formatIpv4, Ipv4Subnet } from "../net/ipv4.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import type { LabDockerMode, LabDockerState, LabDockerdState } from "./lab-state.js";

/** The locally built image: busybox-static's binary and its applets as symlinks, nothing else. */
export const LAB_IMAGE = "weft-lab-busybox:1";
/** Applets linked in the image's /bin (sh for `docker run … sh -c`, the rest for the checks). */
export const IMAGE_APPLETS = ["sh", "httpd", "ping", "wget", "timeout", "mkdir", "echo", "chmod", "cat", "ip", "ls", "hostname", "sleep"] as const;
/** Name of the Docker network of the alternative recipe (mode "network"). */
export const LAB_DOCKER_NETWORK = "weft";
export const CONTAINER_HTTP_PORT = 80;
export const WHOAMI_PATH = "/cgi-bin/whoami";
/** Seconds a fetch may take inside the container (busybox's own timeout: its wget -T crashes in 1.35). */
export const FETCH_TIMEOUT_SECONDS = 3;
/** sun_path is 108 bytes including the NUL. */
const MAX_UNIX_SOCKET_PATH = 107;

export function planDockerState(labDir: string, mode: LabDockerMode, ip6tables = true): LabDockerState {
  return {
    mode,
    image: LAB_IMAGE,
    imageTar: join(labDir, "image", "busybox.tar"),
    ...(mode === "network" ? { network: LAB_DOCKER_NETWORK } : {}),
    ip6tables,
  };
}

/** Whether this lab's dockerds filter IPv6 (ip6tables on): then weft's forward rules must open it. */
export function dockerFiltersIpv6(docker: Pick<LabDockerState, "ip6tables">): boolean {
  return docker.ip6tables !== false;
}

/** Pure: the paths of one host's dockerd, all under `<hostDir>/docker`. */
export function planDockerd(labName: string, hostName: string, hostDir: string): LabDockerdState {
  const dir = join(hostDir, "docker");
  const socket = join(dir, "docker.sock");
  // containerd's socket is deeper still: <exec-root>/containerd/containerd.sock.
  const deepest = join(dir, "exec", "containerd", "containerd.sock.ttrpc");
  if (deepest.length > MAX_UNIX_SOCKET_PATH) {
    throw new Error(`--lab-dir is too long for dockerd: ${deepest} exceeds ${MAX_UNIX_SOCKET_PATH} bytes (a unix socket path limit); use a shorter --lab-dir`);
  }
  return {
    dir,
    configFile: join(dir, "daemon.json"),
    dataRoot: join(dir, "data"),
    execRoot: join(dir, "exec"),
    pidFile: join(dir, "dockerd.pid"),
    socket,
    logFile: join(dir, "dockerd.log"),
    cgroupParent: `weft-lab-${labName}-${hostName}`,
  };
}

/** daemon.json: only the trust key, which dockerd 20.10 would otherwise write to /etc/docker/key.json. */
export function dockerdConfigText(dockerd: LabDockerdState): string {
  return `${JSON.stringify({ "deprecated-key-path": join(dockerd.dir, "key.json") }, null, 2)}\n`;
}

/**
 * dockerd's argument list. Its own files all under the host's docker dir; iptables on (it only
 * sees the namespace's tables); no userland proxy (nothing listens for published ports); cgroupfs
 * so --cgroup-parent is a plain path. In mode "bip" the subnet.env options are exactly those of
 * flannel's Docker drop-in and mk-docker-opts.sh (`weft docker-opts`): --bip, inverted --ip-masq, --mtu,
 * and with FLANNEL_IPV6_SUBNET also --ipv6 --fixed-cidr-v6.
 *
 * With IPv6, dockerd also gets --ip6tables (and --experimental, which dockerd 20.10–26 require for
 * it): Docker ≥ 27 has ip6tables on by default, and then, as for IPv4, it sets the ip6tables FORWARD
 * policy to DROP, so the lab shows that weft's forward rules open the IPv6 overlay as well (20.10
 * makes no ip6tables DOCKER-USER chain: weft's jump goes to the top of FORWARD there). Without
 * --ip6tables (`ip6tables` false: exactly `weft docker-opts`' flags), dockerd 20.10 leaves
 * ip6tables alone: nothing filters or masquerades its containers' IPv6.
 */
export function dockerdArgs(dockerd: LabDockerdState, env: SubnetEnv, mode: LabDockerMode, ip6tables = true): string[] {
  const args = [
    `--config-file=${dockerd.configFile}`,
    `--data-root=${dockerd.dataRoot}`,
    `--exec-root=${dockerd.execRoot}`,
    `--pidfile=${dockerd.pidFile}`,
    `--host=unix://${dockerd.socket}`,
    `--cgroup-parent=${dockerd.cgroupParent}`,
    "--exec-opt=native.cgroupdriver=cgroupfs",
    "--iptables=true",
    "--userland-proxy=false",
  ];
  if (env.ipv6Subnet !== undefined && ip6tables) args.push("--experimental", "--ip6tables");
  if (mode === "bip") {
    if (!env.subnetAddress && env.ipv6Subnet === undefined) {
      throw new Error("subnet.env has neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET: dockerd cannot get --bip or --fixed-cidr-v6");
    }
    const options = dockerOptions(env, false);
    args.push(...[...options.keys()].sort().map((key) => options.get(key) as string));
  }
  return args;
}

/**
 * flannel's alternative recipe: a Docker network on the host's subnet instead of docker0.
 * Subnet in network form and the gateway given explicitly (FLANNEL_SUBNET is the gateway address
 * with the prefix, e.g. 10.66.5.1/24); masquerading inverted as for --ip-masq. With
 * FLANNEL_IPV6_SUBNET the network is `--ipv6` with that subnet and gateway too. IPv6-only (no
 * FLANNEL_SUBNET): Docker 20.10 has no IPv6-only bridge network, so its IPAM picks a host-local
 * IPv4 subnet from its default pools beside the IPv6 one (nothing of it crosses the overlay).
 */
export function dockerNetworkCreateArgs(env: SubnetEnv, name = LAB_DOCKER_NETWORK): string[] {
  const ipv6Subnet = previousIpv6Subnet(env);
  if (!env.subnetAddress && !ipv6Subnet) throw new Error("subnet.env has neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET: cannot create the Docker network");
  if (env.mtu === undefined) throw new Error("subnet.env has no FLANNEL_MTU: cannot create the Docker network");
  const v4 = env.subnetAddress
    ? [`--subnet=${new Ipv4Subnet(env.subnetAddress.address, env.subnetAddress.prefixLength).toString()}`, `--gateway=${formatIpv4(env.subnetAddress.address)}`]
    : [];
  // The gateway as FLANNEL_IPV6_SUBNET gives it (docker0's address, the subnet's ::1).
  const v6 = ipv6Subnet ? ["--ipv6", `--subnet=${ipv6Subnet.toString()}`, `--gateway=${(env.ipv6Subnet as string).split("/")[0]}`] : [];
  return [
    "network", "create", "--driver=bridge",
    ...v4,
    ...v6,
    "-o", `com.docker.network.driver.mtu=${env.mtu}`,
    "-o", `com.docker.network.bridge.enable_ip_masquerade=${env.ipMasq ? "false" : "true"}`,
    name,
  ];
}

/**
 * What each container runs: busybox httpd on :80 serving /cgi-bin/whoami, which answers
 * "<container name> <REMOTE_ADDR>" (the address the server saw: NAT between containers shows).
 * PID 1 traps TERM, so `docker stop` and dockerd's shutdown do not wait out their timeout.
 */
export function containerScript(containerName: string): string {
  if (!/^[a-z0-9]+$/.test(containerName)) throw new Error(`container name "${containerName}": expected letters and digits`);
  const cgi = `/www${WHOAMI_PATH}`;
  return [
    "trap 'exit 0' TERM",
    "mkdir -p /www/cgi-bin",
    `echo ${containerName} > /www/index.html`,
    `echo '#!/bin/sh' > ${cgi}`,
    `echo 'echo Content-Type: text/plain' >> ${cgi}`,
    `echo 'echo' >> ${cgi}`,
    `echo 'echo ${containerName} $REMOTE_ADDR' >> ${cgi}`,
    `chmod +x ${cgi}`,
    `httpd -f -p ${CONTAINER_HTTP_PORT} -h /www &`,
    "wait",
  ].join("\n");
}

export function containerRunArgs(containerName: string, image: string, network?: string): string[] {
  return [
    "run", "--detach",
    `--name=${containerName}`,
    `--hostname=${containerName}`,
    ...(network === undefined ? [] : [`--network=${network}`]),
    image, "sh", "-c", containerScript(containerName),
  ];
}

/** `docker exec <from> …`: one fetch of another container's whoami page (an IPv6 address in brackets). */
export function fetchCommand(targetAddress: string): string[] {
  const host = targetAddress.includes(":") ? `[${targetAddress}]` : targetAddress;
  return ["timeout", String(FETCH_TIMEOUT_SECONDS), "wget", "-q", "-O-", `http://${host}:${CONTAINER_HTTP_PORT}${WHOAMI_PATH}`];
}

/**
 * "h2c1 [::ffff:10.66.81.2]" → {name: "h2c1", remoteAddress: "10.66.81.2"} (busybox httpd listens on
 * IPv6 and sees an IPv4 client as a mapped address); "h2c1 [fd66:0:0:5::2]" → "fd66:0:0:5::2",
 * in canonical form; undefined for anything else.
 */
export function parseWhoami(body: string): { name: string; remoteAddress: string } | undefined {
  const match = /^(\S+) \[?([0-9A-Fa-f.:]+)\]?$/.exec(body.trim());
  if (!match) return undefined;
  const seen = (match[2] as string).replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
  if (/^\d+\.\d+\.\d+\.\d+$/.test(seen)) return { name: match[1] as string, remoteAddress: seen };
  const v6 = tryParseIpv6(seen);
  return v6 === undefined ? undefined : { name: match[1] as string, remoteAddress: formatIpv6(v6) };
}

/** The docker CLI arguments that talk to one lab dockerd (never the machine's own). */
export function dockerHostArgs(dockerd: Pick<LabDockerdState, "socket">): string[] {
  return [`--host=unix://${dockerd.socket}`];
}
