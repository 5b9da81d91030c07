import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { EtcdServer } from "../../src/lab/etcd-server.js";
import { runCommand, type CommandResult } from "../../src/process/run-command.js";
import { EtcdStore } from "../../src/store/etcd-store.js";
import type { StoreOptions } from "../../src/store/store-options.js";
import type { TestPki } from "./certificates.js";

/** etcd users to create before `etcdctl auth enable`; each gets a role with readwrite on its prefix only. */
export interface EtcdAuthSetup {
  rootPassword: string;
  users: { name: string; password: string; prefix: string }[];
}

export interface EtcdFixtureOptions {
  /** Serve clients over https with --client-cert-auth: pki.server's certificate, pki.ca trusted. */
  tls?: TestPki;
  /** Turn authentication on with these users. */
  auth?: EtcdAuthSetup;
}

/** A real etcd for one test file, plus stores with a unique prefix per test. */
export interface EtcdFixture {
  server: EtcdServer;
  /**
   * A store on a fresh prefix, e.g. /weft-test-1a2b3c/network; closed by `stop`. With TLS it
   * presents pki.client (trusting pki.ca) unless `overrides` say otherwise.
   */
  newStore(prefix?: string, overrides?: Partial<StoreOptions>): EtcdStore;
  /** The --etcd-* flags for a weft command reaching this etcd (TLS files, no user). */
  weftFlags(): string[];
  /** How many Authenticate calls etcd received so far (its own /metrics; plain http only). */
  authenticateCalls(): Promise<number>;
  /** etcdctl against this etcd, as root when auth is on; `input` goes to its stdin. */
  etcdctl(args: string[], input?: string): Promise<CommandResult>;
  stop(): Promise<void>;
}

export async function startEtcd(options: EtcdFixtureOptions = {}): Promise<EtcdFixture> {
  const { tls, auth } = options;
  const server = await EtcdServer.start(tls ? { tls: { certFile: tls.server.cert, keyFile: tls.server.key, caFile: tls.ca.cert } } : {});
  const stores: EtcdStore[] = [];
  const tlsFlags = tls ? [`--cacert=${tls.ca.cert}`, `--cert=${tls.client.cert}`, `--key=${tls.client.key}`] : [];
  let rootUser: string[] = [];
  const etcdctl = (args: string[], input?: string) =>
    runCommand("etcdctl", [`--endpoints=${server.endpoint}`, ...tlsFlags, ...rootUser, ...args], { timeoutMs: 10_000, ...(input === undefined ? {} : { input }) });
  try {
    if (auth) {
      await etcdctl(["user", "add", "root", `--new-user-password=${auth.rootPassword}`]);
      for (const user of auth.users) {
        await etcdctl(["role", "add", user.name]);
        await etcdctl(["role", "grant-permission", user.name, "--prefix=true", "readwrite", user.prefix]);
        await etcdctl(["user", "add", user.name, `--new-user-password=${user.password}`]);
        await etcdctl(["user", "grant-role", user.name, user.name]);
      }
      await etcdctl(["auth", "enable"]);
      rootUser = [`--user=root:${auth.rootPassword}`];
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return {
    server,
    newStore(prefix = `/weft-test-${randomBytes(4).toString("hex")}/network`, overrides = {}) {
      const credentials = tls ? { caFile: tls.ca.cert, certFile: tls.client.cert, keyFile: tls.client.key } : {};
      const store = new EtcdStore({ endpoints: [server.endpoint], prefix, callTimeoutMs: 3000, ...credentials, ...overrides });
      stores.push(store);
      return store;
    },
    weftFlags() {
      return [`--etcd-endpoints=${server.endpoint}`, ...(tls ? [`--etcd-cafile=${tls.ca.cert}`, `--etcd-certfile=${tls.client.cert}`, `--etcd-keyfile=${tls.client.key}`] : [])];
    },
    async authenticateCalls() {
      const text = await (await fetch(`${server.endpoint}/metrics`)).text();
      const counts = [...text.matchAll(/^grpc_server_started_total\{[^}]*grpc_method="Authenticate"[^}]*\} (\d+)/gm)];
      return counts.reduce((sum, match) => sum + Number(match[1]), 0);
    },
    etcdctl,
    async stop() {
      for (const store of stores) store.close();
      await server.stop();
    },
  };
}

/** One etcd for the whole test file: started before its tests, stopped after them. */
export function useEtcd(options: EtcdFixtureOptions | (() => EtcdFixtureOptions) = {}): () => EtcdFixture {
  let fixture: EtcdFixture | undefined;
  beforeAll(async () => {
    fixture = await startEtcd(typeof options === "function" ? options() : options);
  });
  afterAll(async () => {
    await fixture?.stop();
  });
  return () => {
    if (!fixture) throw new Error("useEtcd(): etcd is not started yet (use it inside tests, not at import time)");
    return fixture;
  };
}
