/*
 * The bench's paths, one entry each in a registry: what lab a path needs and how to find its
 * two ends in it. The runner (run.ts) knows nothing of any single path; a later backend
 * (WireGuard, IPv6 variants) is one more `weftPath(...)` line in BUILTIN_PATHS.
 *
 *   host            <lab>-h1 ──────── underlay ──────── <lab>-h2                 (no containers)
 *   bridge          <lab>-h1c1 ── docker0 (a real dockerd) ── <lab>-h1c2         (one host)
 *   host-gw … udp   <lab>-h1c1 ─ docker0 ─ h1 ═ overlay/routes ═ h2 ─ docker0 ─ <lab>-h2c1
 *   …-v6            the same in a dual-stack lab (`lab up --ipv6`), measured between the
 *                   containers' IPv6 addresses over the IPv6 underlay
 *   docker-overlay  <lab>-h1c9 ─ swarm overlay (dockerd's own vxlan) ─ <lab>-h2c9
 *   flanneld-…, extras: as the weft rows, with another daemon per host writing subnet.env
 */
import { rm } from "node:fs/promises";
import { readSubnetEnv } from "../host/subnet-env.js";
import type { Lab, LabOptions } from "../lab/lab.js";
import type { LabHostState } from "../lab/lab-state.js";
import { logTail } from "../lab/lab-daemon.js";
import { waitUntil } from "../lab/readiness.js";
import { createOverlayNetwork, formSwarm, removeOverlayContainers, runOverlayContainer, type OverlayContainer } from "../lab/swarm.js";
import { spawnDetachedInNamespace } from "../process/detached.js";
import { isAlive, terminatePids } from "../process/pids.js";
import { DEFAULT_ETCD_PREFIX } from "../store/store-options.js";
import { runningWireguardGo } from "../kernel/wireguard-go.js";
import { DEFAULT_WIREGUARD_DEVICE } from "../backend/wireguard/options.js";

export const BENCH_NETWORK = "10.66.0.0/16";
export const BENCH_IPV6_NETWORK = "fd66::/48";

/** One end of a measured path. */
export interface PathEnd {
  /** The lab host whose core this end runs on in --cpu pinned. */
  host: string;
  namespace: string;
}

export interface PreparedPath {
  client: PathEnd;
  server: PathEnd & { address: string };
  /** MTU the client's interface has. */
  mtu?: number;
  /** The processes whose CPU time and memory are "the daemons" of this path, per lab host. */
  daemons: { host: string; pid: number }[];
  /** Undoes what prepare() added beyond the lab (the lab's teardown removes the rest). */
  cleanup?: () => Promise<void>;
}

export interface BenchPath {
  id: string;
  label: string;
  /** What runs as the path's daemons, for the table and the JSON ("weft", "dockerd", …; "" for none). */
  daemons: string;
  /** The lab this path needs; the runner adds name, directory and logging. */
  lab: Omit<LabOptions, "name" | "labDir" | "log">;
  prepare: (lab: Lab) => Promise<PreparedPath>;
}

function containerEnd(lab: Lab, name: string, family: 4 | 6 = 4): PathEnd & { address: string } {
  const container = lab.container(name).state;
  const address = family === 4 ? container.address : container.addressV6;
  if (!address) throw new Error(`lab container ${name} has no IPv${family} address`);
  return { host: container.host, namespace: container.namespace, address };
}

function weftDaemons(lab: Lab): { host: string; pid: number }[] {
  return lab.hosts.flatMap((host) => (host.state.daemonPid === undefined ? [] : [{ host: host.name, pid: host.state.daemonPid }]));
}

function dockerdDaemons(lab: Lab): { host: string; pid: number }[] {
  return lab.hosts.flatMap((host) => (host.state.dockerd?.pid === undefined ? [] : [{ host: host.name, pid: host.state.dockerd.pid }]));
}

/**
 * Container to container across two hosts, the overlay made by the lab's weft daemons; with
 * `family` 6 in a dual-stack lab, between the containers' IPv6 addresses.
 */
export function weftPath(id: string, label: string, backend: Record<string, unknown>, family: 4 | 6 = 4): BenchPath {
  const dualStack = family === 6 ? { EnableIPv6: true, IPv6Network: BENCH_IPV6_NETWORK } : {};
  return {
    id,
    label,
    daemons: "weft",
    lab: { hosts: 2, containersPerHost: 1, ipv6: family === 6, networkConfig: { Network: BENCH_NETWORK, ...dualStack, Backend: backend } },
    prepare: async (lab) => ({
      client: containerEnd(lab, "h1c1", family),
      server: containerEnd(lab, "h2c1", family),
      mtu: lab.container("h1c1").state.mtu,
      daemons: weftDaemons(lab),
    }),
  };
}

/**
 * The comparison row of issue 12: the same wireguard lease and device configuration, but the
 * packets carried by Debian's wireguard-go (which weft starts and configures with wg). Its CPU is
 * the daemons' too: the wireguard-go processes count beside weft's.
 */
const wireguardGoBase = weftPath("wireguard-go", "Debian's wireguard-go, configured by weft", { Type: "wireguard", Implementation: "wireguard-go" });
const wireguardGoPath: BenchPath = {
  ...wireguardGoBase,
  daemons: "weft + wireguard-go",
  prepare: async (lab) => {
    const prepared = await wireguardGoBase.prepare(lab);
    const children = await Promise.all(
      lab.hosts.map(async (host) => {
        const pid = await runningWireguardGo(host.state.stateDir, DEFAULT_WIREGUARD_DEVICE);
        if (pid === undefined) throw new Error(`bench wireguard-go: no wireguard-go runs for ${DEFAULT_WIREGUARD_DEVICE} on ${host.name} (see ${host.state.logFile})`);
        return { host: host.name, pid };
      }),
    );
    return { ...prepared, daemons: [...prepared.daemons, ...children] };
  },
};

const hostPath: BenchPath = {
  id: "host",
  label: "host (underlay)",
  daemons: "",
  lab: { hosts: 2, containersPerHost: 0, daemons: "none" },
  prepare: async (lab) => {
    const [h1, h2] = [lab.host("h1"), lab.host("h2")];
    return {
      client: { host: h1.name, namespace: h1.namespace },
      server: { host: h2.name, namespace: h2.namespace, address: h2.underlayAddress },
      mtu: lab.state.underlay.mtu,
      daemons: [],
    };
  },
};

const bridgePath: BenchPath = {
  id: "bridge",
  label: "docker0 bridge (one host)",
  daemons: "dockerd",
  lab: { hosts: 1, containersPerHost: 2, daemons: "none", docker: "bip" },
  prepare: async (lab) => ({
    client: containerEnd(lab, "h1c1"),
    server: containerEnd(lab, "h1c2"),
    mtu: lab.container("h1c1").state.mtu,
    daemons: dockerdDaemons(lab),
  }),
};

const dockerOverlayPath: BenchPath = {
  id: "docker-overlay",
  label: "Docker overlay (swarm)",
  daemons: "dockerd",
  lab: { hosts: 2, containersPerHost: 0, daemons: "none", docker: "bip" },
  prepare: async (lab) => {
    await formSwarm(lab.hosts);
    await createOverlayNetwork(lab.host("h1"));
    const image = lab.state.docker?.image;
    if (!image) throw new Error("docker-overlay: the lab has no Docker image");
    const containers: OverlayContainer[] = [];
    try {
      for (const host of lab.hosts) containers.push(await runOverlayContainer(lab.name, host, image));
    } catch (error) {
      await removeOverlayContainers(lab.hosts, containers);
      throw error;
    }
    const [client, server] = containers as [OverlayContainer, OverlayContainer];
    return {
      client: { host: client.host, namespace: client.namespace },
      server: { host: server.host, namespace: server.namespace, address: server.address },
      mtu: client.mtu,
      daemons: dockerdDaemons(lab),
      cleanup: () => removeOverlayContainers(lab.hosts, containers),
    };
  },
};

export const BUILTIN_PATHS: readonly BenchPath[] = [
  hostPath,
  bridgePath,
  weftPath("host-gw", "weft host-gw (routed)", { Type: "host-gw" }),
  weftPath("vxlan", "weft vxlan (kernel)", { Type: "vxlan" }),
  dockerOverlayPath,
  weftPath("udp", "weft udp", { Type: "udp" }),
  weftPath("userspace-vxlan", "weft userspace vxlan", { Type: "vxlan", Userspace: true }),
  // This kernel has no WireGuard: "auto" is weft's own userspace WireGuard; pinned, so a kernel with it measures the same thing.
  weftPath("wireguard", "weft wireguard (userspace)", { Type: "wireguard", Implementation: "userspace" }),
  wireguardGoPath,
  weftPath("host-gw-v6", "weft host-gw, IPv6", { Type: "host-gw" }, 6),
  weftPath("vxlan-v6", "weft vxlan (kernel), IPv6", { Type: "vxlan" }, 6),
  weftPath("userspace-vxlan-v6", "weft userspace vxlan, IPv6", { Type: "vxlan", Userspace: true }, 6),
];

// ---- other daemons: --flanneld PATH and --extra NAME=CMD -------------------------------------

/** The placeholders a daemon command may use, per host. */
export const DAEMON_PLACEHOLDERS = ["etcd", "prefix", "iface", "address", "subnetFile", "stateDir", "host"] as const;
type Placeholder = (typeof DAEMON_PLACEHOLDERS)[number];

/** Pure: `{etcd}`-style placeholders replaced; an unknown one is an error naming the flag. */
export function expandDaemonCommand(template: string, values: Readonly<Record<Placeholder, string>>, flag: string): string {
  return template.replace(/\{([A-Za-z]+)\}/g, (whole, key: string) => {
    if (!(DAEMON_PLACEHOLDERS as readonly string[]).includes(key)) {
      throw new Error(`${flag}: unknown placeholder ${whole} in "${template}"; use ${DAEMON_PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}`);
    }
    return values[key as Placeholder];
  });
}

function placeholderValues(lab: Lab, host: LabHostState): Record<Placeholder, string> {
  return {
    etcd: lab.etcdEndpoint,
    prefix: DEFAULT_ETCD_PREFIX,
    iface: host.underlayDevice,
    address: host.underlayAddress,
    subnetFile: host.subnetFile,
    stateDir: host.stateDir,
    host: host.name,
  };
}

/**
 * A path whose daemons are someone else's: the network config goes to etcd, each host's
 * static subnet.env is removed, `command` (placeholders expanded) starts per host, and the
 * containers follow the subnet.env it writes, exactly as docker0 follows weft's.
 */
export function externalDaemonPath(id: string, label: string, daemons: string, backend: Record<string, unknown>, command: string, flag: string): BenchPath {
  return {
    id,
    label,
    daemons,
    lab: { hosts: 2, containersPerHost: 1, daemons: "none" },
    prepare: async (lab) => {
      await lab.etcdctl(["put", `${DEFAULT_ETCD_PREFIX}/config`, JSON.stringify({ Network: BENCH_NETWORK, Backend: backend })]);
      const started: { host: string; pid: number }[] = [];
      try {
        for (const host of lab.hosts) {
          const line = expandDaemonCommand(command, placeholderValues(lab, host.state), flag);
          await rm(host.state.subnetFile, { force: true });
          const logFile = `${host.state.dir}/${id}.log`;
          const pid = spawnDetachedInNamespace(host.namespace, "sh", ["-c", `exec ${line}`], logFile);
          started.push({ host: host.name, pid });
          await waitUntil(`${flag} daemon on ${host.name} to write ${host.state.subnetFile}`, async () => {
            if (!isAlive(pid)) throw new Error(`${flag} daemon on ${host.name} (${line}) exited; ${logFile}:\n${await logTail(logFile)}`);
            return (await readSubnetEnv(host.state.subnetFile).catch(() => undefined))?.subnetAddress !== undefined;
          }, { timeoutMs: 30_000, intervalMs: 100 });
          await lab.refreshContainers(host.name);
        }
      } catch (error) {
        await terminatePids(started.map((daemon) => daemon.pid), 5000);
        throw error;
      }
      return {
        client: containerEnd(lab, "h1c1"),
        server: containerEnd(lab, "h2c1"),
        mtu: lab.container("h1c1").state.mtu,
        daemons: started,
        cleanup: () => terminatePids(started.map((daemon) => daemon.pid), 5000),
      };
    },
  };
}

/** flanneld's udp and vxlan backends on the same topology. */
export function flanneldPaths(binary: string): BenchPath[] {
  const command = `${binary} --etcd-endpoints={etcd} --etcd-prefix={prefix} --iface={iface} --subnet-file={subnetFile} --ip-masq=false`;
  return [
    externalDaemonPath("flanneld-udp", "flanneld udp", "flanneld", { Type: "udp" }, command, "--flanneld"),
    externalDaemonPath("flanneld-vxlan", "flanneld vxlan", "flanneld", { Type: "vxlan" }, command, "--flanneld"),
  ];
}

export interface ExtraDaemon {
  name: string;
  /** Backend.Type of the network config written for it (default vxlan). */
  backend: string;
  command: string;
}

export function extraPath(extra: ExtraDaemon): BenchPath {
  return externalDaemonPath(extra.name, `${extra.name} (--extra)`, extra.name, { Type: extra.backend }, extra.command, `--extra ${extra.name}`);
}
