import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readSubnetEnv } from "../host/subnet-env.js";
import { SerialQueue } from "../async/serial-queue.js";
import { formatCheckTable, runChecks, type CheckResult } from "./check.js";
import { dockerBridgeFromEnv, inHostRunDir, startDaemon, stopDaemon, waitDaemonReady } from "./lab-daemon.js";
import { DEFAULT_LAB_NAME, defaultLabDir, readLabState, writeLabState, type LabContainerState, type LabHostState, type LabState } from "./lab-state.js";
import { teardownLab, type TeardownReport } from "./lab-teardown.js";
import { execInNamespace } from "./netns.js";
import type { CommandOptions, CommandResult } from "../process/run-command.js";
import { attachContainers } from "./topology-build.js";
import { dockerFiltersIpv6 } from "./docker-plan.js";
import { ETCD_CLIENT_PORT, findMember, hostOf } from "./topology-plan.js";
import { EtcdServer } from "./etcd-server.js";
import { DEFAULT_ETCD_PREFIX } from "../store/store-options.js";
import { isAlive, terminatePids } from "../process/pids.js";
import type { SubnetEnv } from "../host/subnet-env.js";
import { buildImageTar, dockerCli, startDockerContainers, startDockerd, stopDockerd, waitForwardRulesHooked } from "./lab-docker.js";

/**
 * The handle on a lab that is up: what tests and the `weft lab …` commands hold. Every change
 * it makes (daemons started or stopped, containers re-addressed) is written to the state file.
 */

/** Phase timings of buildLab, in milliseconds. */
export interface LabTimings {
  underlay: number;
  etcd: number;
  daemons: number;
  containers: number;
  total: number;
}

/** How the handle starts daemons (buildLab passes its options through). */
export interface LabHandleOptions {
  /** Extra flags for every `weft run`. */
  daemonArgs?: string[];
  /** More environment for one host's daemon, by host name (e.g. {h2: {WEFT_WIREGUARD_IMPLEMENTATION: "userspace"}}). */
  daemonEnv?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readyTimeoutMs?: number;
  /** Progress lines (the CLI prints them; tests usually pass nothing). */
  log?: (line: string) => void;
}

/** Whether the daemons run without forward rules (then the lab does not wait for them in DOCKER-USER). */
function forwardRulesDisabled(daemonArgs: readonly string[]): boolean {
  const last = daemonArgs.filter((arg) => /^--(no-)?iptables-forward-rules(=|$)/.test(arg)).at(-1);
  return last === "--no-iptables-forward-rules" || last === "--iptables-forward-rules=false";
}

export class LabHost {
  constructor(private readonly lab: Lab, readonly state: LabHostState) {}
  get name(): string { return this.state.name; }
  get namespace(): string { return this.state.namespace; }
  get underlayAddress(): string { return this.state.underlayAddress; }
  /** `wg` runs with the host's own /run/wireguard (lab-daemon.ts), where its daemon's wireguard-go keeps its socket. */
  async exec(command: string, args: readonly string[] = [], options?: CommandOptions): Promise<CommandResult> {
    if (command !== "wg") return execInNamespace(this.namespace, command, args, options);
    const [program, argv] = await inHostRunDir(this.state, command, args);
    return execInNamespace(this.namespace, program, argv, options);
  }
  containers(): LabContainer[] { return this.lab.containers.filter((container) => container.host === this.name); }
  /** The docker CLI against this host's dockerd (labs up with `docker` only). */
  docker(args: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    if (!this.state.dockerd) throw new Error(`host ${this.name} has no dockerd: bring the lab up with --docker`);
    return dockerCli(this.state.dockerd, args, options);
  }
}

export class LabContainer {
  constructor(readonly state: LabContainerState) {}
  get name(): string { return this.state.name; }
  get host(): string { return this.state.host; }
  get namespace(): string { return this.state.namespace; }
  /** Address on eth0; undefined until the host's subnet is known. */
  get address(): string | undefined { return this.state.address; }
  /** Docker's container ID, for a Docker container. */
  get dockerId(): string | undefined { return this.state.docker?.id; }
  exec(command: string, args: readonly string[] = [], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.namespace, command, args, options);
  }
}

export class Lab {
  readonly hosts: LabHost[];
  readonly containers: LabContainer[];
  timings?: LabTimings;
  /** State-file writes, in call order, so the newest state always lands last. */
  private readonly writes = new SerialQueue();
  /**
   * The members of the etcd cluster startEtcdCluster() made, m1 first; empty while the lab runs
   * its single etcd. Held by this handle only (not in the state file): teardown still ends them,
   * with every other process in the lab's namespaces.
   */
  private etcdMembers: EtcdServer[] = [];

  constructor(readonly state: LabState, private readonly options: LabHandleOptions = {}) {
    this.containers = state.containers.map((container) => new LabContainer(container));
    this.hosts = state.hosts.map((host) => new LabHost(this, host));
  }

  get name(): string { return this.state.name; }
  get labDir(): string { return this.state.labDir; }
  get etcdEndpoint(): string { return this.state.etcd.endpoint; }

  host(name: string): LabHost {
    return findMember(this.name, "host", this.hosts, name);
  }

  container(name: string): LabContainer {
    return findMember(this.name, "container", this.containers, name);
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
    const host = this.hosts.find((candidate) => candidate.name === target);
    if (host) return host.exec(command, args, options);
    return execInNamespace(this.namespaceOf(target), command, args, options);
  }

  /** Client URLs of every etcd member (the lab's one etcd, or the cluster's members, m1 first). */
  get etcdEndpoints(): string[] {
    return this.etcdMembers.length > 0 ? this.etcdMembers.map((member) => member.endpoint) : [this.etcdEndpoint];
  }

  /** etcdctl inside the etcd namespace, against the lab's etcd (every member of a cluster: it fails over). */
  etcdctl(args: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    return execInNamespace(this.state.etcd.namespace, "etcdctl", [`--endpoints=${this.etcdEndpoints.join(",")}`, ...args], options);
  }

  /**
   * Starts the host's daemon and waits until it is ready; docker0 is (re)built from its subnet.env
   * (with `docker`: the host's dockerd is (re)started with it and runs the containers).
   */
  async startDaemon(
    hostName: string,
    extraArgs: readonly string[] = this.options.daemonArgs ?? [],
    extraEnv: Readonly<Record<string, string>> | undefined = this.options.daemonEnv?.[hostName],
  ): Promise<void> {
    const host = hostOf(this.state, hostName);
    await startDaemon(this.state, host, extraArgs, extraEnv);
    await this.save();
    const env = await waitDaemonReady(host, this.options.readyTimeoutMs);
    await this.applySubnetEnv(hostName, env);
  }

  /** Makes docker0 (or the host's dockerd) follow subnet.env; nothing happens when subnet and MTU are unchanged. */
  private async applySubnetEnv(hostName: string, env: SubnetEnv): Promise<void> {
    const host = hostOf(this.state, hostName);
    const config = dockerBridgeFromEnv(host, env);
    const unchanged = config.bridgeAddress === host.bridgeAddress && config.bridgeAddressV6 === host.bridgeAddressV6 && config.mtu === host.mtu;
    if (!this.state.docker) {
      if (!unchanged) await attachContainers(this.state, hostName, config);
    } else if (!unchanged || host.dockerd?.pid === undefined || !isAlive(host.dockerd.pid)) {
      await this.startDocker(hostName, env);
    }
    await this.save();
  }

  /** (Re)starts the host's dockerd from subnet.env and runs the host's containers on it. */
  private async startDocker(hostName: string, env: SubnetEnv): Promise<void> {
    const host = hostOf(this.state, hostName);
    const log = this.options.log ?? (() => undefined);
    const started = Date.now();
    await stopDockerd(this.state, host);
    await buildImageTar(this.state.docker as NonNullable<LabState["docker"]>);
    // dockerd's first start on a cold machine can take a while: never less than a minute.
    await startDockerd(this.state, host, env, Math.max(this.options.readyTimeoutMs ?? 0, 60_000));
    await this.save();
    log(`${hostName}: dockerd PID ${host.dockerd?.pid} answers on ${host.dockerd?.socket} (${Date.now() - started} ms)`);
    await startDockerContainers(this.state, host, env);
    await this.save();
    if (this.state.daemons === "weft" && !forwardRulesDisabled(this.options.daemonArgs ?? [])) {
      await waitForwardRulesHooked(host, env, dockerFiltersIpv6(this.state.docker as NonNullable<LabState["docker"]>));
      log(`${hostName}: weft's forward rules are hooked into Docker's DOCKER-USER chain`);
    }
    const containers = this.state.containers.filter((container) => container.host === hostName);
    const addresses = (container: LabContainerState) => [container.address, container.addressV6].filter((address) => address !== undefined).join(" ");
    log(`${hostName}: Docker containers ${containers.map((container) => `${container.name} ${addresses(container)}`).join(", ") || "none"} (${Date.now() - started} ms)`);
  }

  /** Stops the host's dockerd (its containers first) by PID; its mounts are removed. */
  async stopDockerd(hostName: string): Promise<void> {
    const host = hostOf(this.state, hostName);
    await stopDockerd(this.state, host);
    host.bridgeAddress = undefined;
    await this.save();
  }

  /**
   * Starts the lab's etcd from its data dir (at build time, or again after a test stopped it to
   * play an outage) and records its PID.
   */
  async startEtcd(): Promise<void> {
    const etcd = this.state.etcd;
    const server = await EtcdServer.start({
      host: etcd.address,
      clientPort: ETCD_CLIENT_PORT,
      peerPort: ETCD_CLIENT_PORT + 1,
      netns: etcd.namespace,
      dataDir: etcd.dataDir,
      logFile: etcd.logFile,
      name: `${this.name}-etcd`,
      detached: true,
    });
    etcd.pid = server.pid;
    await this.save();
  }

  /** Stops the lab's etcd by PID (an outage; its data dir stays for startEtcd()). */
  async stopEtcd(): Promise<void> {
    const pid = this.state.etcd.pid;
    if (pid !== undefined) await terminatePids([pid], 10_000);
  }

  /** Fault: etcd loses its data. Stops it, empties its data dir, starts it again (no config, no leases). */
  async restartEtcdEmpty(): Promise<void> {
    await this.stopEtcd();
    await rm(this.state.etcd.dataDir, { recursive: true, force: true });
    await mkdir(this.state.etcd.dataDir, { recursive: true, mode: 0o700 });
    await this.startEtcd();
  }

  /** Fault: etcd frozen (SIGSTOP): connections stay open, nothing answers. thawEtcd() resumes it. */
  freezeEtcd(): void {
    const pid = this.state.etcd.pid;
    if (pid === undefined || !isAlive(pid)) throw new Error(`lab ${this.name}: etcd is not running, nothing to freeze`);
    process.kill(pid, "SIGSTOP");
  }

  thawEtcd(): void {
    const pid = this.state.etcd.pid;
    if (pid !== undefined && isAlive(pid)) process.kill(pid, "SIGCONT");
  }

  /**
   * Replaces the lab's etcd by a new cluster of `size` members in the etcd namespace, all on the
   * etcd address: m1 on the lab's ports and data dir (so etcdEndpoint stays m1's), m<i> on client
   * port 2379 + 10000·(i−1), peer port one above. The old etcd's data is discarded: call it before
   * any daemon starts (buildLab with every host in deferredHosts), then restoreNetworkConfig().
   */
  async startEtcdCluster(size = 3): Promise<void> {
    if (size < 1 || !Number.isInteger(size)) throw new Error(`lab ${this.name}: an etcd cluster of ${size} members makes no sense`);
    await this.stopEtcdMembers();
    await this.stopEtcd();
    const etcd = this.state.etcd;
    const members = Array.from({ length: size }, (_, index) => {
      const clientPort = ETCD_CLIENT_PORT + 10_000 * index;
      const base = index === 0 ? { dataDir: etcd.dataDir, logFile: etcd.logFile } : { dataDir: join(dirname(etcd.dataDir), `m${index + 1}`), logFile: join(dirname(etcd.logFile), `etcd-m${index + 1}.log`) };
      return { name: `m${index + 1}`, clientPort, peerPort: clientPort + 1, ...base };
    });
    const initialCluster = members.map((member) => `${member.name}=http://${etcd.address}:${member.peerPort}`).join(",");
    for (const member of members) {
      await rm(member.dataDir, { recursive: true, force: true });
      await mkdir(member.dataDir, { recursive: true, mode: 0o700 });
    }
    // Started together: no member is healthy before a quorum runs.
    this.etcdMembers = await Promise.all(
      members.map((member) =>
        EtcdServer.start({ ...member, host: etcd.address, netns: etcd.namespace, initialCluster, detached: true }),
      ),
    );
    etcd.pid = this.etcdMembers[0]?.pid;
    await this.save();
  }

  /** A member of the cluster startEtcdCluster() made, by name (m1, m2, …). */
  etcdMember(name: string): EtcdServer {
    const member = this.etcdMembers.find((candidate) => candidate.options.name === name);
    if (!member) throw new Error(`lab ${this.name} has no etcd member "${name}" (members: ${this.etcdMembers.map((m) => m.options.name).join(", ") || "none: call startEtcdCluster() first"})`);
    return member;
  }

  /** Fault: a cluster member crashes (SIGKILL); its data dir stays for startEtcdMember(). */
  async killEtcdMember(name: string): Promise<void> {
    await this.etcdMember(name).stopProcess("SIGKILL");
  }

  /** Starts a stopped cluster member again on its data dir; waits until it is healthy (needs a quorum). */
  async startEtcdMember(name: string): Promise<void> {
    const member = this.etcdMember(name);
    await member.launch();
    if (member === this.etcdMembers[0]) {
      this.state.etcd.pid = member.pid;
      await this.save();
    }
  }

  /** The name of the cluster's current leader, asked of every member that answers; undefined when none knows one. */
  async etcdLeader(): Promise<string | undefined> {
    const result = await this.etcdctl(["endpoint", "status", "-w", "json"], { allowFailure: true, timeoutMs: 10_000 });
    // member_id and leader exceed 2^53: read as the digits etcdctl printed, not as JSON numbers.
    let statuses: { Endpoint: string; Status: { header: { member_id: string }; leader: string } }[];
    try {
      statuses = JSON.parse(result.stdout.replace(/:(\d{16,})/g, ':"$1"'));
    } catch {
      return undefined; // No member answered (etcdctl printed nothing to parse).
    }
    for (const { Endpoint, Status } of statuses) {
      if (Status.header.member_id === Status.leader) return this.etcdMembers.find((member) => member.endpoint === Endpoint)?.options.name;
    }
    return undefined;
  }

  private async stopEtcdMembers(): Promise<void> {
    await Promise.all(this.etcdMembers.map((member) => member.stopProcess()));
    this.etcdMembers = [];
  }

  /** Writes the lab's network config again (after restartEtcdEmpty, as an operator restoring it would). */
  async restoreNetworkConfig(prefix = DEFAULT_ETCD_PREFIX): Promise<void> {
    if (!this.state.networkConfig) throw new Error(`lab ${this.name} has no network config (no weft daemons)`);
    await this.etcdctl(["put", `${prefix}/config`, JSON.stringify(this.state.networkConfig)]);
  }

  /** Stops the host's daemon by PID (SIGTERM); kernel state it leaves behind stays, as on a real host. */
  async stopDaemon(hostName: string, graceMs?: number): Promise<void> {
    await stopDaemon(hostOf(this.state, hostName), graceMs);
    await this.save();
  }

  /** Re-reads the host's subnet.env and rebuilds docker0/containers (or restarts dockerd) if the subnet or MTU changed. */
  async refreshContainers(hostName: string): Promise<void> {
    const host = hostOf(this.state, hostName);
    const env = await readSubnetEnv(host.subnetFile);
    if (!env) throw new Error(`host ${hostName}: ${host.subnetFile} does not exist yet`);
    if (this.state.docker) {
      await this.applySubnetEnv(hostName, env);
      return;
    }
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
    return this.writes.run(() => writeLabState(this.state));
  }

  /** Removes everything this lab made: processes, namespaces, lab dir. */
  async destroy(): Promise<TeardownReport> {
    return teardownLab({ name: this.name, labDir: this.labDir });
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
