import type { Argv } from "yargs";
import { EtcdStore } from "../store/etcd-store.js";
import { DEFAULT_ETCD_ENDPOINTS, DEFAULT_ETCD_PREFIX, type StoreOptions } from "../store/store-options.js";

/** The --etcd-* flags every command that talks to etcd takes (FLANNELD_ETCD_* work too). */
export interface StoreArgs {
  "etcd-endpoints": string;
  "etcd-prefix": string;
  "etcd-keyfile"?: string;
  "etcd-certfile"?: string;
  "etcd-cafile"?: string;
  "etcd-username"?: string;
  "etcd-password"?: string;
}

export function defineStoreOptions<T>(yargs: Argv<T>): Argv<T & StoreArgs> {
  return yargs
    .env("FLANNELD")
    .option("etcd-endpoints", { type: "string", default: DEFAULT_ETCD_ENDPOINTS.join(","), describe: "comma-separated etcd client URLs" })
    .option("etcd-prefix", { type: "string", default: DEFAULT_ETCD_PREFIX, describe: "etcd key prefix of the network" })
    .option("etcd-keyfile", { type: "string", describe: "TLS client key (with --etcd-certfile)" })
    .option("etcd-certfile", { type: "string", describe: "TLS client certificate (with --etcd-keyfile)" })
    .option("etcd-cafile", { type: "string", describe: "CA certificate that signed etcd's server certificate" })
    .option("etcd-username", { type: "string", describe: "etcd user (with --etcd-password)" })
    .option("etcd-password", { type: "string", describe: "etcd password" });
}

export function storeOptionsFromArgs(args: StoreArgs): StoreOptions {
  const endpoints = args["etcd-endpoints"].split(",").map((endpoint) => endpoint.trim()).filter(Boolean);
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
      throw new Error(`--etcd-endpoints: "${endpoint}" is not an http(s)://host:port URL`);
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
  };
}

/** Runs `work` with a store built from the flags, and always closes it. */
export async function withStore<T>(args: StoreArgs, work: (store: EtcdStore) => Promise<T>): Promise<T> {
  const store = new EtcdStore(storeOptionsFromArgs(args));
  try {
    return await work(store);
  } finally {
    store.close();
  }
}
