/*
 * The one-machine lab: every box is a network namespace named <name>-<role>.
 *
 *                       <name>-ul   bridge "ul0", underlay 192.168.77.0/24 (no address of its own)
 *        +---------------+-----------------+-----------------+------------------+
 *        | veth "etcd"   | veth "h1"       | veth "h2"  ...  | veth "inet" (optional)
 *        |               |                 |                 |
 *   <name>-etcd     <name>-h1         <name>-h2         <name>-inet
 *   eth0 .2         eth0 .11          eth0 .12          eth0 .254 ("the internet":
 *   etcd :2379      weft daemon       weft daemon             outside the Network)
 *                   docker0 = FLANNEL_SUBNET, mtu FLANNEL_MTU (as dockerd --bip --mtu)
 *                     | vc1       | vc2
 *                <name>-h1c1  <name>-h1c2     containers: eth0 .2, .3 … of the host subnet,
 *                                             default route via docker0's address
 *
 * With `docker` ("bip" or "network") the hosts run a real dockerd instead (docker-plan.ts): no
 * container namespaces or veths are made here; dockerd makes docker0 (or the Docker network) and
 * the containers, and each container's namespace is attached under the same name <name>-hNcM.
 *
 * This module is the pure plan: every name and address, decided without touching the kernel
 * (tested without root). topology-build.ts creates what the plan says.
 */
import { join } from "node:path";
import { Ipv4Subnet, formatIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, parseIpv6 } from "../net/ipv6.js";
import { planDockerState, planDockerd } from "./docker-plan.js";
import type { LabContainerState, LabDockerMode, LabHostState, LabState } from "./lab-state.js";
import { assertNamespaceName } from "./netns.js";

export const UNDERLAY_CIDR = "192.168.77.0/24";
/** The IPv6 underlay of a dual-stack lab (ULA: nothing outside the lab routes it). */
export const UNDERLAY_CIDR_V6 = "fd77::/64";
export const UNDERLAY_BRIDGE = "ul0";
export const HOST_UNDERLAY_DEVICE = "eth0";
export const DOCKER_BRIDGE = "docker0";
export const ETCD_CLIENT_PORT = 2379;
/** Each host has its own namespace, so every daemon can use the same healthz port. */
export const HEALTHZ_PORT = 9471;
const ETCD_HOST_OFFSET = 2;
const FIRST_HOST_OFFSET = 11;
const INTERNET_OFFSET = 254;
export const MAX_HOSTS = 200;
/** Containers take .2 … of a host subnet; 50 is plenty and keeps any /24-or-larger subnet valid. */
export const MAX_CONTAINERS_PER_HOST = 50;

export interface TopologyPlanOptions {
  name: string;
  labDir: string;
  hosts: number;
  containersPerHost: number;
  backend: string;
  internet: boolean;
  ipMasq: boolean;
  daemons: "weft" | "none";
  underlayMtu: number;
  networkConfig?: Record<string, unknown>;
  /** A real dockerd per host and Docker containers (see docker-plan.ts); undefined: plain namespaces. */
  docker?: LabDockerMode;
  /** With docker and IPv6: dockerd --ip6tables (default true). */
  dockerIp6tables?: boolean;
  /** Dual-stack underlay: every underlay member also gets an address of UNDERLAY_CIDR_V6. */
  ipv6?: boolean;
}

/** Names of this lab's namespaces look like `<name>-ul`, `<name>-h3`, `<name>-h3c2`. */
export function labNamespacePattern(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped}-(ul|etcd|inet|h\\d+(c\\d+)?)$`);
}

/** Pure: decides every name and address of the lab; nothing is created. */
export function planTopology(options: TopologyPlanOptions): LabState {
  const { name, labDir } = options;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$/.test(name)) {
    throw new Error(`lab name "${name}" is invalid: use 1..41 letters, digits, "_", "." or "-"`);
  }
  if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) {
    throw new Error(`--hosts ${options.hosts}: must be an integer between 1 and ${MAX_HOSTS}`);
  }
  if (!Number.isInteger(options.containersPerHost) || options.containersPerHost < 0 || options.containersPerHost > MAX_CONTAINERS_PER_HOST) {
    throw new Error(`--containers ${options.containersPerHost}: must be an integer between 0 and ${MAX_CONTAINERS_PER_HOST}`);
  }
  const underlay = Ipv4Subnet.parse(UNDERLAY_CIDR, "underlay");
  const underlayAddress = (offset: number): string => formatIpv4(underlay.addressAt(offset));
  const etcdAddress = underlayAddress(ETCD_HOST_OFFSET);
  // fd77::11 for 192.168.77.11: the same digits, read as hex, so the two addresses of a host look alike.
  const underlayV6 = Ipv6Subnet.parse(UNDERLAY_CIDR_V6, "IPv6 underlay");
  const underlayAddressV6 = (offset: number): string => formatIpv6(underlayV6.network | parseIpv6(`::${offset}`));

  const hosts: LabHostState[] = [];
  const containers: LabContainerState[] = [];
  for (let h = 1; h <= options.hosts; h++) {
    const hostName = `h${h}`;
    const dir = join(labDir, hostName);
    hosts.push({
      name: hostName,
      namespace: `${name}-${hostName}`,
      underlayDevice: HOST_UNDERLAY_DEVICE,
      underlayAddress: underlayAddress(FIRST_HOST_OFFSET + h - 1),
      ...(options.ipv6 ? { underlayAddressV6: underlayAddressV6(FIRST_HOST_OFFSET + h - 1) } : {}),
      dir,
      subnetFile: join(dir, "subnet.env"),
      stateDir: join(dir, "state"),
      logFile: join(dir, "weft.log"),
      healthzPort: HEALTHZ_PORT,
      ...(options.docker ? { dockerd: planDockerd(name, hostName, dir) } : {}),
    });
    for (let c = 1; c <= options.containersPerHost; c++) {
      const container = { name: `${hostName}c${c}`, host: hostName, namespace: `${name}-${hostName}c${c}` };
      containers.push(options.docker ? container : { ...container, hostVeth: `vc${c}` });
    }
  }
  const state: LabState = {
    version: 1,
    name,
    labDir,
    createdAt: new Date().toISOString(),
    backend: options.backend,
    networkConfig: options.networkConfig,
    daemons: options.daemons,
    ipMasq: options.ipMasq,
    underlay: { namespace: `${name}-ul`, bridge: UNDERLAY_BRIDGE, cidr: UNDERLAY_CIDR, ...(options.ipv6 ? { cidrV6: UNDERLAY_CIDR_V6 } : {}), mtu: options.underlayMtu },
    etcd: {
      namespace: `${name}-etcd`,
      address: etcdAddress,
      endpoint: `http://${etcdAddress}:${ETCD_CLIENT_PORT}`,
      dataDir: join(labDir, "etcd", "data"),
      logFile: join(labDir, "etcd", "etcd.log"),
    },
    internet: options.internet ? { namespace: `${name}-inet`, address: underlayAddress(INTERNET_OFFSET) } : undefined,
    ...(options.docker ? { docker: planDockerState(labDir, options.docker, options.dockerIp6tables ?? true) } : {}),
    hosts,
    containers,
  };
  for (const namespace of allNamespaces(state)) assertNamespaceName(namespace);
  return state;
}

export function allNamespaces(state: LabState): string[] {
  return [
    state.underlay.namespace,
    state.etcd.namespace,
    ...(state.internet ? [state.internet.namespace] : []),
    ...state.hosts.map((host) => host.namespace),
    ...state.containers.map((container) => container.namespace),
  ];
}

/** The namespaces the lab creates itself: all but those of Docker containers (dockerd makes those). */
export function createdNamespaces(state: LabState): string[] {
  const docker = new Set(state.containers.filter((container) => container.hostVeth === undefined).map((container) => container.namespace));
  return allNamespaces(state).filter((namespace) => !docker.has(namespace));
}

/** Containers the lab builds itself: a namespace and a veth on the host's docker0. */
export function plainContainers(state: LabState): (LabContainerState & { hostVeth: string })[] {
  return state.containers.filter((container): container is LabContainerState & { hostVeth: string } => container.hostVeth !== undefined);
}

/**
 * The one lookup of a lab member by name (hosts and containers, as state or as handles);
 * the error names the lab and lists the names there are.
 */
export function findMember<T extends { readonly name: string }>(labName: string, kind: "host" | "container", members: readonly T[], name: string): T {
  const member = members.find((candidate) => candidate.name === name);
  if (!member) {
    throw new Error(`lab "${labName}" has no ${kind} "${name}"; ${kind}s are ${members.map((m) => m.name).join(", ") || "none"}`);
  }
  return member;
}

export function hostOf(state: LabState, hostName: string): LabHostState {
  return findMember(state.name, "host", state.hosts, hostName);
}
