import { mkdir } from "node:fs/promises";
import { writeSubnetEnv } from "../host/subnet-env.js";
import { Ipv4Subnet } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6 } from "../net/ipv6.js";
import { DEFAULT_ETCD_PREFIX } from "../store/store-options.js";
import { errorMessage } from "../errors/error-message.js";
import { Lab, type LabHandleOptions, type LabTimings } from "./lab-handle.js";
import type { LabDockerMode } from "./lab-state.js";
import { DEFAULT_LAB_NAME, defaultLabDir, readLabState } from "./lab-state.js";
import { teardownLab } from "./lab-teardown.js";
import { assertNamespacesFree, buildUnderlay } from "./topology-build.js";
import { hostOf, planTopology } from "./topology-plan.js";

// The lab's front door: callers import the builder, the handle it returns and the teardown from here.
export { Lab, LabContainer, LabHost, openLab, type LabHandleOptions, type LabTimings } from "./lab-handle.js";
export { teardownLab, type TeardownReport } from "./lab-teardown.js";
export { DEFAULT_LAB_NAME, type LabDockerMode } from "./lab-state.js";

/**
 * The lab as a program: `buildLab()` for tests and `weft lab up`, `openLab()` for the later
 * CLI commands (everything is re-read from the state file), `teardownLab()` for `lab down`,
 * which also works when the state file is gone. See topology-plan.ts for the picture.
 *
 * Modules, arrows pointing down: lab.ts (builder) → lab-handle.ts (Lab) → lab-teardown.ts →
 * lab-docker.ts (dockerd, Docker containers) → topology-build.ts (creates namespaces, veths, docker0)
 * → topology-plan.ts (pure) → docker-plan.ts (pure) → lab-state.ts.
 */
export interface LabOptions extends LabHandleOptions {
  /** Namespaces are `<name>-<role>`; tests pass a random one (uniquePrefix() without the dash). */
  name?: string;
  labDir?: string;
  hosts?: number;
  containersPerHost?: number;
  /** Backend.Type written to the network config. */
  backend?: string;
  /** More fields of the Backend object, e.g. {VNI: 1, Port: 8472}. */
  backendOptions?: Record<string, unknown>;
  network?: string;
  /**
   * Dual-stack: an IPv6 underlay beside the IPv4 one, and (unless networkConfig is given)
   * EnableIPv6 with IPv6Network `ipv6Network` (DEFAULT_IPV6_NETWORK) in the network config.
   */
  ipv6?: boolean;
  ipv6Network?: string;
  /**
   * An IPv6-only overlay (implies ipv6): EnableIPv4 false in the network config, docker0 and the
   * containers IPv6 only. The underlay stays dual-stack: etcd is reached over IPv4, and the
   * weft hosts still pick their interface by its IPv4 address; every tunnel runs over IPv6.
   * With `docker`, dockerd (20.10 has no IPv6-only bridge) still gives docker0 and each container
   * its default host-local IPv4 (172.17.0.0/16, the same on every host): the lab records and
   * checks only the containers' IPv6 addresses, which come from FLANNEL_IPV6_SUBNET.
   */
  ipv6Only?: boolean;
  /** Whole network config, overriding network/backend/backendOptions. */
  networkConfig?: Record<string, unknown>;
  etcdPrefix?: string;
  /** Add the "internet" namespace (an address outside the Network). */
  internet?: boolean;
  ipMasq?: boolean;
  /**
   * "weft" starts a daemon per host and builds docker0 from its subnet.env. "none" starts no
   * daemon and writes a static subnet.env per host (10.66.<i>.0/24, with ipv6 also fd66:0:0:<i>::/64; MTU = underlay MTU) so the
   * caller can drive the data path itself (e.g. engine tests).
   */
  daemons?: "weft" | "none";
  /**
   * Hosts (e.g. ["h3"]) whose daemon buildLab does not start: a test starts it later with
   * lab.startDaemon("h3") to watch a host join. Their containers stay unaddressed until then.
   */
  deferredHosts?: string[];
  underlayMtu?: number;
  /**
   * A real dockerd per host with Docker containers (docker-plan.ts) instead of plain namespaces:
   * "bip" as flannel's Docker drop-in (docker0 = FLANNEL_SUBNET), "network" as its alternative
   * recipe (a Docker network on FLANNEL_SUBNET, docker0 left alone).
   */
  docker?: LabDockerMode;
  /**
   * With docker and ipv6: give dockerd --ip6tables --experimental (default true: Docker ≥ 27's
   * behaviour, IPv6 FORWARD DROP). false: exactly `weft docker-opts`' flags (dockerd 20.10 then
   * leaves ip6tables alone).
   */
  dockerIp6tables?: boolean;
  /** Leave a half-built lab in place when building fails (to read logs); `down` removes it. */
  keepOnFailure?: boolean;
}

export const DEFAULT_NETWORK = "10.66.0.0/16";
/** /64 subnets of a /48, as the dual-stack key in flannel's docs (10.66.52.0-24&fd66:0:0:6::-64). */
export const DEFAULT_IPV6_NETWORK = "fd66::/48";

/** Builds a whole lab; on failure everything built so far is removed before the error is thrown. */
export async function buildLab(options: LabOptions = {}): Promise<Lab> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const name = options.name ?? DEFAULT_LAB_NAME;
  const labDir = options.labDir ?? defaultLabDir(name);
  const daemons = options.daemons ?? "weft";
  const backend = options.backend ?? "vxlan";
  const networkText = options.network ?? DEFAULT_NETWORK;
  const network = Ipv4Subnet.parse(networkText, "--network");
  const ipv6Only = options.ipv6Only ?? false;
  const ipv6 = (options.ipv6 ?? false) || ipv6Only;
  const ipv6Network = ipv6 ? Ipv6Subnet.parse(options.ipv6Network ?? DEFAULT_IPV6_NETWORK, "--ipv6-network") : undefined;
  const dualStack = ipv6Network ? { EnableIPv6: true, IPv6Network: ipv6Network.toString() } : {};
  const ipv4 = ipv6Only ? { EnableIPv4: false } : { Network: networkText };
  const networkConfig = options.networkConfig ?? { ...ipv4, ...dualStack, Backend: { Type: backend, ...options.backendOptions } };
  const state = planTopology({
    name,
    labDir,
    hosts: options.hosts ?? 2,
    containersPerHost: options.containersPerHost ?? 1,
    backend,
    internet: options.internet ?? false,
    ipMasq: options.ipMasq ?? false,
    daemons,
    underlayMtu: options.underlayMtu ?? 1500,
    networkConfig: daemons === "weft" ? networkConfig : undefined,
    docker: options.docker,
    dockerIp6tables: options.dockerIp6tables,
    ipv6,
  });
  const existingState = await readLabState(labDir).catch(() => undefined);
  if (existingState) {
    throw new Error(`${labDir} already holds lab "${existingState.name}": run \`weft lab down --name ${existingState.name}\` first or pick another --name`);
  }

  await assertNamespacesFree(state);

  const lab = new Lab(state, options);
  const timings: LabTimings = { underlay: 0, etcd: 0, daemons: 0, containers: 0, total: 0 };
  try {
    await mkdir(labDir, { recursive: true });
    await Promise.all(state.hosts.map((host) => mkdir(host.dir, { recursive: true })));
    await mkdir(state.etcd.dataDir, { recursive: true });
    // The state goes to disk before anything is created, so `down` finds even a half-built lab.
    await lab.save();

    let phase = Date.now();
    log(`building ${state.hosts.length} hosts, ${state.containers.length} containers in namespaces ${name}-*`);
    await buildUnderlay(state);
    timings.underlay = Date.now() - phase;

    phase = Date.now();
    await lab.startEtcd();
    timings.etcd = Date.now() - phase;
    log(`etcd ${state.etcd.endpoint} up in ${state.etcd.namespace} (PID ${state.etcd.pid})`);

    phase = Date.now();
    if (daemons === "weft") {
      const prefix = options.etcdPrefix ?? DEFAULT_ETCD_PREFIX;
      await lab.etcdctl(["put", `${prefix}/config`, JSON.stringify(networkConfig)]);
      log(`network config ${prefix}/config = ${JSON.stringify(networkConfig)}`);
      const deferred = new Set(options.deferredHosts ?? []);
      for (const hostName of deferred) hostOf(state, hostName); // Fail early on a typo.
      await Promise.all(state.hosts.filter((host) => !deferred.has(host.name)).map((host) => lab.startDaemon(host.name)));
      timings.daemons = Date.now() - phase;
      timings.containers = 0; // startDaemon builds docker0 as soon as each daemon is ready.
    } else {
      const mtu = state.underlay.mtu;
      await Promise.all(
        state.hosts.map(async (host, index) => {
          const subnet = new Ipv4Subnet(network.network + (index + 1) * 256, 24);
          if (!network.contains(subnet)) throw new Error(`--network ${network}: too small for ${state.hosts.length} /24 host subnets`);
          // Dual-stack: the <i>th /64 of the IPv6 network (fd66:0:0:<i>::/64) beside 10.66.<i>.0/24.
          const subnetV6 = ipv6Network ? new Ipv6Subnet(ipv6Network.network + (BigInt(index + 1) << 64n), 64) : undefined;
          if (ipv6Network && subnetV6 && !ipv6Network.contains(subnetV6)) throw new Error(`--ipv6-network ${ipv6Network}: too small for ${state.hosts.length} /64 host subnets`);
          const v6 = ipv6Network && subnetV6 ? { ipv6Network: ipv6Network.toString(), ipv6Subnet: `${formatIpv6(subnetV6.addressAt(1))}/64` } : {};
          const v4 = ipv6Only ? {} : { network, subnetAddress: { address: subnet.addressAt(1), prefixLength: 24 } };
          await writeSubnetEnv(host.subnetFile, {
            ...v4,
            ...v6,
            mtu,
            ipMasq: state.ipMasq,
          });
          await lab.refreshContainers(host.name);
        }),
      );
      timings.containers = Date.now() - phase;
    }
    timings.total = Date.now() - started;
    lab.timings = timings;
    await lab.save();
    return lab;
  } catch (error) {
    if (options.keepOnFailure) {
      await lab.save().catch(() => undefined);
      throw new Error(`${errorMessage(error)}\n(lab "${name}" left in place for inspection in ${labDir}; remove it with \`weft lab down --name ${name}\`)`);
    }
    await teardownLab({ name, labDir }).catch(() => undefined);
    throw error;
  }
}
