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
 * Nothing of the lab lives in the root namespace: veth pairs are created with both ends
 * placed directly into their namespaces. Building is batched (one `ip -batch` per
 * namespace, all veths in one batch) so a lab comes up in about a second plus daemon start.
 */
import { join } from "node:path";
import { Ipv4Subnet, formatIpv4, parseIpv4 } from "../net/ipv4.js";
import type { LabContainerState, LabHostState, LabState } from "./lab-state.js";
import {
  assertNamespaceName,
  configureLinkLines,
  createBridgeLines,
  ipBatch,
  listNamespaces,
  setSysctls,
} from "./netns.js";
import { runCommand } from "../process/run-command.js";

export const UNDERLAY_CIDR = "192.168.77.0/24";
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
      dir,
      subnetFile: join(dir, "subnet.env"),
      stateDir: join(dir, "state"),
      logFile: join(dir, "weft.log"),
      healthzPort: HEALTHZ_PORT,
    });
    for (let c = 1; c <= options.containersPerHost; c++) {
      containers.push({ name: `${hostName}c${c}`, host: hostName, namespace: `${name}-${hostName}c${c}`, hostVeth: `vc${c}` });
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
    underlay: { namespace: `${name}-ul`, bridge: UNDERLAY_BRIDGE, cidr: UNDERLAY_CIDR, mtu: options.underlayMtu },
    etcd: {
      namespace: `${name}-etcd`,
      address: etcdAddress,
      endpoint: `http://${etcdAddress}:${ETCD_CLIENT_PORT}`,
      dataDir: join(labDir, "etcd", "data"),
      logFile: join(labDir, "etcd", "etcd.log"),
    },
    internet: options.internet ? { namespace: `${name}-inet`, address: underlayAddress(INTERNET_OFFSET) } : undefined,
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

/**
 * Fails when any of the lab's namespaces exists: another lab of that name is up or left over.
 * Checked before building, so a failed build never tears down someone else's lab.
 */
export async function assertNamespacesFree(state: LabState): Promise<void> {
  const existing = new Set(await listNamespaces());
  const clashing = allNamespaces(state).filter((namespace) => existing.has(namespace));
  if (clashing.length > 0) {
    throw new Error(
      `network namespaces ${clashing.join(", ")} already exist: a lab named "${state.name}" is up or left over; ` +
        `run \`weft lab down --name ${state.name}\` or pick another --name`,
    );
  }
}

/**
 * Creates every namespace, the underlay, and the container veths (still unaddressed:
 * their addresses come from subnet.env, see attachContainers).
 */
export async function buildUnderlay(state: LabState): Promise<void> {
  const namespaces = allNamespaces(state);
  await ipBatch(undefined, namespaces.map((namespace) => `netns add ${namespace}`), {
    hint: "creating the lab's network namespaces",
  });

  // Before any link exists, so every interface inherits the defaults: hosts route between
  // docker0 and the overlay, and asymmetric overlay paths must not be dropped by rp_filter.
  const forwarding = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
  };
  await Promise.all(state.hosts.map((host) => setSysctls(host.namespace, forwarding)));

  const ul = state.underlay;
  const prefixLength = Ipv4Subnet.parse(ul.cidr).prefixLength;
  const underlayMembers: { peer: string; namespace: string; address: string }[] = [
    { peer: "etcd", namespace: state.etcd.namespace, address: state.etcd.address },
    ...state.hosts.map((host) => ({ peer: host.name, namespace: host.namespace, address: host.underlayAddress })),
    ...(state.internet ? [{ peer: "inet", namespace: state.internet.namespace, address: state.internet.address }] : []),
  ];
  const vethLines = [
    ...underlayMembers.map(
      (member) => `link add name eth0 netns ${member.namespace} type veth peer name ${member.peer} netns ${ul.namespace}`,
    ),
    ...state.containers.map((container) => {
      const host = hostOf(state, container.host);
      return `link add name eth0 netns ${container.namespace} type veth peer name ${container.hostVeth} netns ${host.namespace}`;
    }),
  ];
  await ipBatch(undefined, vethLines, { hint: "creating the lab's veth pairs" });

  const batches: Promise<void>[] = [];
  batches.push(
    ipBatch(ul.namespace, [
      "link set lo up",
      ...createBridgeLines(ul.bridge, { mtu: ul.mtu }),
      ...underlayMembers.flatMap((member) => configureLinkLines({ name: member.peer, mtu: ul.mtu, master: ul.bridge })),
    ]),
  );
  for (const member of underlayMembers) {
    batches.push(
      ipBatch(member.namespace, [
        "link set lo up",
        ...configureLinkLines({ name: "eth0", mtu: ul.mtu, addresses: [`${member.address}/${prefixLength}`] }),
      ]),
    );
  }
  for (const container of state.containers) batches.push(ipBatch(container.namespace, ["link set lo up"]));
  await Promise.all(batches);
}

/** What a host's subnet.env says, reduced to what docker0 needs. */
export interface DockerBridgeConfig {
  /** FLANNEL_SUBNET: bridge address with the subnet's prefix length, e.g. 10.66.36.1/24. */
  bridgeAddress: string;
  mtu: number;
}

/**
 * Builds docker0 and addresses the host's containers exactly as `dockerd --bip=$FLANNEL_SUBNET
 * --mtu=$FLANNEL_MTU` would: bridge address and MTU from the file, containers at .2, .3 …
 * with the same prefix, MTU on both veth ends, default route via the bridge address.
 * Idempotent: a previous docker0 and container addresses are replaced (the subnet may change).
 */
export async function attachContainers(state: LabState, hostName: string, config: DockerBridgeConfig): Promise<void> {
  const host = hostOf(state, hostName);
  const [addressText, prefixText] = config.bridgeAddress.split("/");
  const bridgeIp = parseIpv4(addressText ?? "", `${host.subnetFile} FLANNEL_SUBNET`);
  const prefixLength = Number(prefixText);
  const subnet = new Ipv4Subnet(bridgeIp, prefixLength);
  const containers = state.containers.filter((container) => container.host === hostName);
  if (containers.length + 2 > subnet.size - 1) {
    throw new Error(`${host.subnetFile}: subnet ${subnet} is too small for docker0 and ${containers.length} containers`);
  }

  await runCommand("ip", ["-n", host.namespace, "link", "del", DOCKER_BRIDGE], { allowFailure: true });
  await ipBatch(host.namespace, [
    ...createBridgeLines(DOCKER_BRIDGE, { mtu: config.mtu, addresses: [config.bridgeAddress] }),
    ...containers.flatMap((container) => configureLinkLines({ name: container.hostVeth, mtu: config.mtu, master: DOCKER_BRIDGE })),
  ]);
  await Promise.all(
    containers.map((container, index) => {
      const address = formatIpv4(subnet.addressAt(index + 2));
      container.address = address;
      container.prefixLength = prefixLength;
      container.mtu = config.mtu;
      return ipBatch(container.namespace, [
        "address flush dev eth0",
        ...configureLinkLines({ name: "eth0", mtu: config.mtu, addresses: [`${address}/${prefixLength}`] }),
        `route replace default via ${formatIpv4(bridgeIp)} dev eth0`,
      ]);
    }),
  );
  host.bridgeAddress = config.bridgeAddress;
  host.subnet = subnet.toString();
  host.mtu = config.mtu;
}

export function hostOf(state: LabState, hostName: string): LabHostState {
  const host = state.hosts.find((candidate) => candidate.name === hostName);
  if (!host) {
    throw new Error(`lab "${state.name}" has no host "${hostName}"; hosts are ${state.hosts.map((h) => h.name).join(", ")}`);
  }
  return host;
}
