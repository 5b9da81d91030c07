import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { readSubnetEnv, writeSubnetEnv } from "../host/subnet-env.js";
import { Ipv4Subnet } from "../net/ipv4.js";
import { formatCheckTable, runChecks, type CheckResult } from "./check.js";
import { EtcdServer } from "./etcd-server.js";
import { dockerBridgeFromEnv, startDaemon, stopDaemon, waitDaemonReady } from "./lab-daemon.js";
import { defaultLabDir, readLabState, writeLabState, type LabContainerState, type LabHostState, type LabState } from "./lab-state.js";
import { execInNamespace, killNamespaceProcesses, listNamespaces } from "./netns.js";
import { runCommand, type CommandOptions, type CommandResult } from "../process/run-command.js";
import { terminatePids } from "../process/pids.js";
import { ETCD_CLIENT_PORT, allNamespaces, assertNamespacesFree, attachContainers, buildUnderlay, hostOf, labNamespacePattern, planTopology } from "./topology.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * The lab as a program: `buildLab()` for tests and `weft lab up`, `openLab()` for the later
 * CLI commands (everything is re-read from the state file), `teardownLab()` for `lab down`,
 * which also works when the state file is gone. See topology.ts for the picture.
 */
export interface LabOptions {
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
  /** Whole network config, overriding network/backend/backendOptions. */
  networkConfig?: Record<string, unknown>;
  etcdPrefix?: string;
  /** Add the "internet" namespace (an address outside the Network). */
  internet?: boolean;
  ipMasq?: boolean;
  /**
   * "weft" starts a daemon per host and builds docker0 from its subnet.env. "none" starts no
   * daemon and writes a static subnet.env per host (10.66.<i>.0/24, MTU = underlay MTU) so the
   * caller can drive the data path itself (e.g. engine tests).
   */
  daemons?: "weft" | "none";
  /** Extra flags for every `weft run`. */
  daemonArgs?: string[];
  /**
   * Hosts (e.g. ["h3"]) whose daemon buildLab does not start: a test starts it later with
   * lab.startDaemon("h3") to watch a host join. Their containers stay unaddressed until then.
   */
  deferredHosts?: string[];
  underlayMtu?: number;
  readyTimeoutMs?: number;
  /** Leave a half-built lab in place when building fails (to read logs); `down` removes it. */
  keepOnFailure?: boolean;
  /** Progress lines (the CLI prints them; tests usually pass nothing). */
  log?: (line: string) => void;
}

export const DEFAULT_LAB_NAME = "weft";
export const DEFAULT_NETWORK = "10.66.0.0/16";
export const DEFAULT_ETCD_PREFIX = "/coreos.com/network";

/** Phase timings of buildLab, in milliseconds. */
export interface LabTimings {
  underlay: number;
  etcd: number;
  daemons: number;
  containers: number;
  total: number;
}

export class LabHost {
  constructor(private readonly lab: Lab, readonly state: LabHostState) {}
  get name(): string { return this.state.name; }
  get namespace(): string { return this.state.namespace; }
  get underlayAddress(): string { return this.state.underlayAddress; }
  exec(command: string, args: readonly string[] = [], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.namespace, command, args, options);
  }
  containers(): LabContainer[] { return this.lab.containers.filter((container) => container.host === this.name); }
}

export class LabContainer {
  constructor(readonly state: LabContainerState) {}
  get name(): string { return this.state.name; }
  get host(): string { return this.state.host; }
  get namespace(): string { return this.state.namespace; }
  /** Address on eth0; undefined until the host's subnet is known. */
  get address(): string | undefined { return this.state.address; }
  exec(command: string, args: readonly string[] = [], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.namespace, command, args, options);
  }
}

export class Lab {
  readonly hosts: LabHost[];
  readonly containers: LabContainer[];
  timings?: LabTimings;
  private saving: Promise<void> = Promise.resolve();

  constructor(readonly state: LabState, private readonly options: Pick<LabOptions, "daemonArgs" | "readyTimeoutMs" | "log"> = {}) {
    this.containers = state.containers.map((container) => new LabContainer(container));
    this.hosts = state.hosts.map((host) => new LabHost(this, host));
  }

  get name(): string { return this.state.name; }
  get labDir(): string { return this.state.labDir; }
  get etcdEndpoint(): string { return this.state.etcd.endpoint; }

  host(name: string): LabHost {
    const host = this.hosts.find((candidate) => candidate.name === name);
    if (!host) throw new Error(`lab "${this.name}" has no host "${name}"; hosts are ${this.hosts.map((h) => h.name).join(", ")}`);
    return host;
  }

  container(name: string): LabContainer {
    const container = this.containers.find((candidate) => candidate.name === name);
    if (!container) {
      throw new Error(`lab "${this.name}" has no container "${name}"; containers are ${this.containers.map((c) => c.name).join(", ") || "none"}`);
    }
    return container;
  }

  /** Namespace of a host, container, or one of "etcd", "ul" (underlay), "inet". */
  namespaceOf(target: string): string {
    if (target === "etcd") return this.state.etcd.namespace;
    if (target === "ul" || target === "underlay") return this.state.underlay.namespace;
    if (target === "inet" || target === "internet") {
      if (!this.state.internet) throw new Error(`lab "${this.name}" has no internet namespace; bring it up with --internet`);
      return this.state.internet.namespace;
    }
    const host = this.hosts.find((candidate) => candidate.name === target);
    if (host) return host.namespace;
    const container = this.containers.find((candidate) => candidate.name === target);
    if (container) return container.namespace;
    throw new Error(
      `lab "${this.name}" has no "${target}": use a host (${this.hosts.map((h) => h.name).join(", ")}), ` +
        `a container (${this.containers.map((c) => c.name).join(", ") || "none"}), etcd, ul or inet`,
    );
  }

  async exec(target: string, command: string, args: readonly string[] = [], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.namespaceOf(target), command, args, options);
  }

  /** etcdctl inside the etcd namespace, against the lab's etcd. */
  etcdctl(args: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.state.etcd.namespace, "etcdctl", [`--endpoints=${this.etcdEndpoint}`, ...args], options);
  }

  /** Starts the host's daemon and waits until it is ready; docker0 is (re)built from its subnet.env. */
  async startDaemon(hostName: string, extraArgs: readonly string[] = this.options.daemonArgs ?? []): Promise<void> {
    const host = hostOf(this.state, hostName);
    await startDaemon(this.state, host, extraArgs);
    await this.save();
    const env = await waitDaemonReady(host, this.options.readyTimeoutMs);
    const config = dockerBridgeFromEnv(host, env);
    if (config.bridgeAddress !== host.bridgeAddress || config.mtu !== host.mtu) await attachContainers(this.state, hostName, config);
    await this.save();
  }

  /** Stops the host's daemon by PID (SIGTERM); kernel state it leaves behind stays, as on a real host. */
  async stopDaemon(hostName: string, graceMs?: number): Promise<void> {
    await stopDaemon(hostOf(this.state, hostName), graceMs);
    await this.save();
  }

  /** Re-reads the host's subnet.env and rebuilds docker0/containers if the subnet or MTU changed. */
  async refreshContainers(hostName: string): Promise<void> {
    const host = hostOf(this.state, hostName);
    const env = await readSubnetEnv(host.subnetFile);
    if (!env) throw new Error(`host ${hostName}: ${host.subnetFile} does not exist yet`);
    await attachContainers(this.state, hostName, dockerBridgeFromEnv(host, env));
    await this.save();
  }

  check(): Promise<CheckResult[]> {
    return runChecks(this.state);
  }

  async checkTable(): Promise<{ ok: boolean; table: string; results: CheckResult[] }> {
    const results = await this.check();
    return { ok: results.length > 0 && results.every((result) => result.ok), table: formatCheckTable(results), results };
  }

  /** Writes the state file; writes are queued so the newest state always lands last. */
  save(): Promise<void> {
    const write = this.saving.then(() => writeLabState(this.state));
    this.saving = write.catch(() => undefined);
    return write;
  }

  /** Removes everything this lab made: processes, namespaces, lab dir. */
  async destroy(): Promise<TeardownReport> {
    return teardownLab({ name: this.name, labDir: this.labDir });
  }
}

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
  const networkConfig = options.networkConfig ?? { Network: networkText, Backend: { Type: backend, ...options.backendOptions } };
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
    const etcd = await EtcdServer.start({
      host: state.etcd.address,
      clientPort: ETCD_CLIENT_PORT,
      peerPort: ETCD_CLIENT_PORT + 1,
      netns: state.etcd.namespace,
      dataDir: state.etcd.dataDir,
      logFile: state.etcd.logFile,
      name: `${name}-etcd`,
      detached: true,
    });
    state.etcd.pid = etcd.pid;
    await lab.save();
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
          await writeSubnetEnv(host.subnetFile, {
            network,
            subnetAddress: { address: subnet.addressAt(1), prefixLength: 24 },
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

/** Opens a lab `weft lab up` built, from its state file. */
export async function openLab(options: { name?: string; labDir?: string } = {}): Promise<Lab> {
  const name = options.name ?? DEFAULT_LAB_NAME;
  const labDir = options.labDir ?? defaultLabDir(name);
  const state = await readLabState(labDir);
  if (!state) throw new Error(`no lab state in ${labDir}: is lab "${name}" up? (\`weft lab up --name ${name}\`)`);
  return new Lab(state);
}

export interface TeardownReport {
  namespaces: string[];
  /** Recorded PIDs that were still running and were stopped. */
  pids: number[];
  labDirRemoved: boolean;
}

/**
 * Removes a lab: recorded processes (only if they still live in one of the lab's namespaces:
 * a PID from a stale file may belong to someone else by now), then every process inside the
 * lab's namespaces, the namespaces (found by name, so this works without the state file), and
 * the lab dir. Idempotent.
 */
export async function teardownLab(options: { name?: string; labDir?: string } = {}): Promise<TeardownReport> {
  const name = options.name ?? DEFAULT_LAB_NAME;
  const labDir = options.labDir ?? defaultLabDir(name);
  const state = await readLabState(labDir).catch(() => undefined);
  const pattern = labNamespacePattern(name);
  const present = new Set(await listNamespaces());
  const namespaces = [...new Set([
    ...[...present].filter((namespace) => pattern.test(namespace)),
    ...(state ? allNamespaces(state).filter((namespace) => present.has(namespace)) : []),
  ])];

  const namespaceInodes = new Set<number>();
  for (const namespace of namespaces) {
    const inode = await inodeOf(`/run/netns/${namespace}`);
    if (inode !== undefined) namespaceInodes.add(inode);
  }
  const recorded = state ? [state.etcd.pid, ...state.hosts.map((host) => host.daemonPid)].filter((pid): pid is number => pid !== undefined) : [];
  const ours: number[] = [];
  for (const pid of recorded) {
    const inode = await inodeOf(`/proc/${pid}/ns/net`);
    if (inode !== undefined && namespaceInodes.has(inode)) ours.push(pid);
  }
  // Daemons first, so they do not log a storm of errors when etcd goes away under them.
  const etcdPid = state?.etcd.pid;
  await terminatePids(ours.filter((pid) => pid !== etcdPid), 5000);
  await terminatePids(ours.filter((pid) => pid === etcdPid), 5000);
  await Promise.all(namespaces.map((namespace) => killNamespaceProcesses(namespace, 3000)));
  if (namespaces.length > 0) {
    // -force: keep deleting the rest if one is already gone.
    await runCommand("ip", ["-force", "-batch", "-"], { input: namespaces.map((namespace) => `netns delete ${namespace}\n`).join(""), allowFailure: true });
  }
  const remaining = (await listNamespaces()).filter((namespace) => namespaces.includes(namespace));
  if (remaining.length > 0) {
    throw new Error(`could not delete network namespaces ${remaining.join(", ")}; try \`ip netns delete <name>\` by hand`);
  }
  const labDirRemoved = await removeLabDir(labDir, name, state);
  return { namespaces, pids: ours, labDirRemoved };
}

/** Removes the lab dir only when it is recognisably a lab dir, so a wrong --lab-dir cannot wipe data. */
async function removeLabDir(labDir: string, name: string, state: LabState | undefined): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(labDir);
  } catch {
    return false;
  }
  const onlyLabEntries = entries.every((entry) => /^(h\d+|etcd|state\.json(\..*\.tmp)?)$/.test(entry));
  if (state?.name === name || onlyLabEntries) {
    await rm(labDir, { recursive: true, force: true });
    return true;
  }
  return false;
}

async function inodeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

