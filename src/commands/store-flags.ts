import type { Argv } from "yargs";
import { ConfigurationError } from "../errors/configuration-error.js";
import { defaultFromEnvironment, type Environment } from "./flag-environment.js";
import { EtcdStore } from "../store/etcd-store.js";
import { dropIpServernameWarning } from "../store/grpc-logs.js";
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_ETCD_ENDPOINTS, DEFAULT_ETCD_PREFIX, type StoreOptions } from "../store/store-options.js";

/** The --etcd-* flags every command that talks to etcd takes (FLANNELD_ETCD_* work too). */
export interface StoreArgs {
  "etcd-endpoints": string;
  "etcd-prefix": string;
  "etcd-keyfile"?: string;
  "etcd-certfile"?: string;
  "etcd-cafile"?: string;
  "etcd-username"?: string;
  "etcd-password"?: string;
  "etcd-call-timeout"?: number;
}

/**
 * Go's flag package lets a repeated flag override the earlier one (units often append flags to
 * an environment-provided set); yargs would collect an array. Scalar flags coerce to the last.
 */
function last<T>(value: T | T[]): T {
  return Array.isArray(value) ? (value.at(-1) as T) : value;
}
export const lastString = (value: string | string[]): string => last(value);
export const lastNumber = (value: number | number[]): number => last(value);
export const lastBoolean = (value: boolean | boolean[]): boolean => last(value);

/** The --etcd-* flags, each also read from its FLANNELD_ETCD_* variable (flag-environment.ts). */
export function defineStoreOptions<T>(yargs: Argv<T>, environment: Environment = process.env): Argv<T & StoreArgs> {
  const withDefault = (flag: string, builtIn: string) => defaultFromEnvironment(flag, builtIn, environment);
  const fromEnv = (flag: string) => defaultFromEnvironment(flag, undefined, environment);
  return yargs
    .option("etcd-endpoints", { type: "string", coerce: lastString, ...withDefault("etcd-endpoints", DEFAULT_ETCD_ENDPOINTS.join(",")), describe: "comma-separated etcd client URLs" })
    .option("etcd-prefix", { type: "string", coerce: lastString, ...withDefault("etcd-prefix", DEFAULT_ETCD_PREFIX), describe: "etcd key prefix of the network" })
    .option("etcd-keyfile", { type: "string", coerce: lastString, ...fromEnv("etcd-keyfile"), describe: "TLS client key (with --etcd-certfile)" })
    .option("etcd-certfile", { type: "string", coerce: lastString, ...fromEnv("etcd-certfile"), describe: "TLS client certificate (with --etcd-keyfile)" })
    .option("etcd-cafile", { type: "string", coerce: lastString, ...fromEnv("etcd-cafile"), describe: "CA certificate that signed etcd's server certificate" })
    .option("etcd-username", { type: "string", coerce: lastString, ...fromEnv("etcd-username"), describe: "etcd user (with --etcd-password)" })
    .option("etcd-password", { type: "string", coerce: lastString, ...fromEnv("etcd-password"), describe: "etcd password" })
    .middleware((args) => hidePasswordFromProcessTitle(args))
    .option("etcd-call-timeout", {
      type: "number",
      coerce: lastNumber,
      default: DEFAULT_CALL_TIMEOUT_MS / 1000,
      describe: "seconds an etcd call may take before it counts as failed (weft's own; raise it for an etcd with multi-second round trips)",
    });
}

/**
 * A password given as a flag sits in /proc/<pid>/cmdline, which every user can read (ps shows
 * it). Setting the title rewrites that memory: the command line with the password masked. The
 * window before this runs is start-up only; FLANNELD_ETCD_PASSWORD in a root-only environment
 * file avoids it altogether (/proc/<pid>/environ is readable by the owner alone).
 */
export function hidePasswordFromProcessTitle(args: { "etcd-password"?: string }, argv: readonly string[] = process.argv): void {
  const password = args["etcd-password"];
  if (!password || !argv.some((arg) => arg.includes(password))) return;
  process.title = maskedCommandLine(argv, password);
}

export function maskedCommandLine(argv: readonly string[], secret: string): string {
  return argv.map((arg) => arg.split(secret).join("***")).join(" ");
}

export function storeOptionsFromArgs(args: StoreArgs): StoreOptions {
  const endpoints = args["etcd-endpoints"].split(",").map((endpoint) => endpoint.trim()).filter(Boolean);
  for (const endpoint of endpoints) {
    // Credentials in the URL would be printed wherever the endpoint is (logs, errors, /status).
    const userinfo = /^(https?:\/\/)([^/@]*)@/.exec(endpoint);
    if (userinfo) {
      const user = (userinfo[2] ?? "").split(":")[0];
      throw new ConfigurationError(`--etcd-endpoints: "${userinfo[1]}${user}:***@…" carries a user name or password: give them as --etcd-username and --etcd-password`);
    }
    if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
      throw new ConfigurationError(`--etcd-endpoints: "${endpoint}" is not an http(s)://host:port URL`);
    }
  }
  return {
    endpoints,
    prefix: args["etcd-prefix"],
    keyFile: args["etcd-keyfile"] || undefined,
    certFile: args["etcd-certfile"] || undefined,
    caFile: args["etcd-cafile"] || undefined,
    username: args["etcd-username"] || undefined,
    password: args["etcd-password"] || undefined,
    callTimeoutMs: callTimeoutMs(args["etcd-call-timeout"]),
  };
}

function callTimeoutMs(seconds: number | undefined): number {
  if (seconds === undefined) return DEFAULT_CALL_TIMEOUT_MS;
  if (!Number.isFinite(seconds) || seconds < 0.5 || seconds > 300) {
    throw new ConfigurationError(`--etcd-call-timeout: ${seconds} is not a number of seconds between 0.5 and 300`);
  }
  return Math.round(seconds * 1000);
}

/** Runs `work` with a store built from the flags, and always closes it. */
export async function withStore<T>(args: StoreArgs, work: (store: EtcdStore) => Promise<T>): Promise<T> {
  dropIpServernameWarning();
  const store = new EtcdStore(storeOptionsFromArgs(args));
  try {
    return await work(store);
  } finally {
    store.close();
  }
}
