import { spawn, type ChildProcess } from "node:child_process";
import { sleep } from "../async/sleep.js";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CommandMissingError, startError } from "../process/command-errors.js";
import { commandLineIn, runCommand } from "../process/run-command.js";

/**
 * A real etcd server for the lab and the tests: its own data dir, loopback (or a lab
 * namespace's) address, ports chosen free at start. Stopped by PID, never by name.
 */
export interface EtcdServerOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  clientPort?: number;
  peerPort?: number;
  /** Run inside this network namespace (ip netns exec). */
  netns?: string;
  /** Reuse a data dir (e.g. to restart the same member); default a fresh temp dir. */
  dataDir?: string;
  /** Where etcd's own output goes; default discarded. */
  logFile?: string;
  name?: string;
  /** Start etcd in its own process group and let it outlive this process (for `weft lab up`). */
  detached?: boolean;
  /** Serve clients over TLS and require client certificates signed by `caFile`. */
  tls?: EtcdTlsFiles;
  /**
   * Every member of a new cluster, `name=peerURL,…` as etcd's --initial-cluster (this member's
   * own entry included); default a cluster of this member alone. Members of a new cluster must be
   * started together: none answers before a quorum of them runs.
   */
  initialCluster?: string;
}

export interface EtcdTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export class EtcdServer {
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly options: Required<Omit<EtcdServerOptions, "netns" | "logFile" | "detached" | "tls" | "initialCluster">> &
      Pick<EtcdServerOptions, "netns" | "logFile" | "detached" | "tls" | "initialCluster">,
    private readonly ownsDataDir: boolean,
  ) {}

  get endpoint(): string {
    return `${this.options.tls ? "https" : "http"}://${this.options.host}:${this.options.clientPort}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  static async start(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const host = options.host ?? "127.0.0.1";
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "weft-etcd-")));
    // In a namespace, the ports belong to that namespace; loopback ports are probed locally.
    const clientPort = options.clientPort ?? (options.netns ? 2379 : await freeLoopbackPort());
    const peerPort = options.peerPort ?? (options.netns ? 2380 : await freeLoopbackPort());
    const server = new EtcdServer(
      { host, clientPort, peerPort, dataDir, name: options.name ?? "weft", netns: options.netns, logFile: options.logFile, detached: options.detached, tls: options.tls, initialCluster: options.initialCluster },
      ownsDataDir,
    );
    try {
      await server.launch();
    } catch (error) {
      // launch() already stopped the process; a data dir made for this server goes too.
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
      throw error;
    }
    return server;
  }

  /** (Re)starts the etcd process on the same data dir and ports. */
  async launch(): Promise<void> {
    const { host, peerPort, dataDir, name, netns, logFile, detached, tls, initialCluster } = this.options;
    const client = this.endpoint;
    const peer = `http://${host}:${peerPort}`;
    const args = [
      "--name", name,
      "--data-dir", dataDir,
      "--listen-client-urls", client,
      "--advertise-client-urls", client,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster", initialCluster ?? `${name}=${peer}`,
      "--initial-cluster-state", "new",
      "--log-level", "warn",
      "--logger", "zap",
      ...(tls ? ["--cert-file", tls.certFile, "--key-file", tls.keyFile, "--trusted-ca-file", tls.caFile, "--client-cert-auth"] : []),
    ];
    // A long-lived server, so spawned here rather than through runCommand (which waits for the end).
    const [command, fullArgs] = commandLineIn(netns, "etcd", args);
    let output: "ignore" | number = "ignore";
    if (logFile) {
      const { openSync } = await import("node:fs");
      output = openSync(logFile, "a");
    }
    const child = spawn(command, fullArgs, { stdio: ["ignore", output, output], detached: detached ?? false });
    if (typeof output === "number") {
      const { closeSync } = await import("node:fs");
      closeSync(output);
    }
    // A detached etcd must not keep this process alive (the lab CLI returns while etcd runs on).
    if (detached) child.unref();
    this.process = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const spawnError = new Promise<never>((_, reject) =>
      child.once("error", (error: NodeJS.ErrnoException) => {
        // A missing program says what to install; anything else keeps Node's words.
        const cause = startError(command, error);
        reject(cause instanceof CommandMissingError ? cause : new Error(`cannot start etcd: ${error.message}`, { cause }));
      }),
    );
    const abort = new AbortController();
    try {
      await Promise.race([this.waitHealthy(abort.signal), spawnError, this.exited.then(() => {
        throw new Error(`etcd exited during start-up (data dir ${dataDir}, client ${client})`);
      })]);
    } catch (error) {
      // Never leave a half-started etcd behind: the caller has no handle to stop it.
      abort.abort();
      await this.stopProcess();
      throw error;
    }
  }

  private async waitHealthy(signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !signal.aborted) {
      if (await this.isHealthy()) return;
      await sleep(100, signal);
    }
    throw new Error(`etcd at ${this.endpoint} did not become healthy within 20 s`);
  }

  private async isHealthy(): Promise<boolean> {
    const { netns, tls } = this.options;
    if (netns || tls) {
      const args = [`--endpoints=${this.endpoint}`, ...(tls ? [`--cacert=${tls.caFile}`, `--cert=${tls.certFile}`, `--key=${tls.keyFile}`] : []), "endpoint", "health"];
      // Not healthy yet, for any reason (also a missing etcdctl): the start-up deadline reports it.
      return runCommand("etcdctl", args, { netns, timeoutMs: 3000, allowFailure: true }).then(
        (result) => result.exitCode === 0,
        () => false,
      );
    }
    try {
      const response = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      return response.ok;
    } catch {
      return false;
    }
  }

  /**
   * Stops the process (SIGTERM, then SIGKILL after 5 s; SIGKILL at once to play a crash); keeps
   * the data dir for launch().
   */
  async stopProcess(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(killer);
  }

  /** Stops etcd and removes the data dir if this server created it. */
  async stop(): Promise<void> {
    await this.stopProcess();
    if (this.ownsDataDir) await rm(this.options.dataDir, { recursive: true, force: true });
  }
}

/** A TCP port free on loopback right now (the kernel picks it). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
