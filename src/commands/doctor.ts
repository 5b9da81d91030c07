import type { Argv, CommandModule } from "yargs";
import { Registry } from "prom-client";
import { canLoadLeaseSet } from "../backend/lease-set-loader.js";
import { findBackend } from "../backend/registry.js";
import type { ReconcileReport } from "../backend/backend.js";
import { parseNetworkConfig } from "../config/network-config.js";
import { selectExternalInterface } from "../config/interface-selection.js";
import { previousSubnet, readSubnetEnv } from "../host/subnet-env.js";
import { decodeLeases } from "../lease/stored-lease.js";
import type { Lease } from "../lease/types.js";
import { createLogger } from "../observe/logger.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineStoreOptions, withStore, type StoreArgs } from "./store-flags.js";

/**
 * `weft doctor`: compares this host's kernel state with what the leases in etcd say it should
 * be, using the daemon's own backend code (the same desired-state and reconcile functions), and
 * prints desired vs actual and the changes; `--repair` makes them.
 *
 * Why read etcd rather than ask the running daemon: doctor must work exactly when the daemon is
 * down, wedged or was never started, and etcd is the source of truth the daemon itself follows.
 * This host's own lease is found by the subnet file's FLANNEL_SUBNET, else by PublicIP.
 */
interface DoctorArgs extends StoreArgs {
  iface?: string | string[];
  "iface-regex"?: string | string[];
  "iface-can-reach"?: string;
  "public-ip"?: string;
  "subnet-file": string;
  "state-dir": string;
  repair: boolean;
  json: boolean;
}

export interface DoctorResult {
  backend: string;
  device: string;
  ownSubnet: string;
  peers: number;
  report: ReconcileReport;
  refused: string[];
  repaired: boolean;
}

function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((item) => item !== "");
}

async function findOwnLease(leases: readonly Lease[], subnetFile: string, publicIP: string): Promise<Lease> {
  const env = await readSubnetEnv(subnetFile).catch(() => undefined);
  const fromFile = env ? previousSubnet(env) : undefined;
  const own =
    (fromFile && leases.find((lease) => lease.subnet.equals(fromFile))) ??
    leases.find((lease) => lease.attrs.publicIP === publicIP);
  if (!own) {
    throw new Error(
      `no lease in etcd belongs to this host (subnet file ${subnetFile}: ${fromFile?.toString() ?? "absent"}; PublicIP ${publicIP}); ` +
        "start `weft run` first, or pass the daemon's --subnet-file / --iface / --public-ip",
    );
  }
  return own;
}

export async function diagnose(store: EtcdStore, args: DoctorArgs): Promise<DoctorResult | string> {
  const configKey = await store.get(store.configKey);
  if (!configKey) throw new Error(`no network config at ${store.configKey}; write one with \`weft config set\``);
  const config = parseNetworkConfig(configKey.value);
  const factory = findBackend(config.backend.type);
  const external = await selectExternalInterface({
    ifaces: list(args.iface),
    ifaceRegexes: list(args["iface-regex"]),
    ifaceCanReach: args["iface-can-reach"],
    publicIP: args["public-ip"],
  });
  const logger = createLogger({ name: "weft-doctor", level: "warn" });
  const backend = factory.create({
    network: config,
    options: config.backend.options,
    external,
    logger,
    metrics: new Registry(),
    stateDir: args["state-dir"],
  });
  try {
    if (!canLoadLeaseSet(backend)) {
      return `backend ${config.backend.type} keeps no kernel state that doctor checks (doctor covers vxlan and host-gw)`;
    }
    const listing = await store.list(store.subnetsPrefix);
    const leases = decodeLeases(listing.keys, logger);
    const own = await findOwnLease(leases, args["subnet-file"], external.publicIP);
    const peers = leases.filter((lease) => !lease.subnet.equals(own.subnet));
    await backend.loadLeaseSet(own, peers);
    const report = await backend.reconcile({ dryRun: !args.repair });
    return {
      backend: config.backend.type,
      device: external.name,
      ownSubnet: own.subnet.toString(),
      peers: peers.length,
      report,
      refused: backend.refusedPeers(),
      repaired: args.repair && report.changes.length > 0,
    };
  } finally {
    await backend.stop();
  }
}

export function formatDoctorResult(result: DoctorResult): string {
  const section = (title: string, lines: readonly string[]) =>
    [`${title} (${lines.length}):`, ...(lines.length === 0 ? ["  (none)"] : [...lines].sort().map((line) => `  ${line}`))].join("\n");
  const { report } = result;
  const verdict =
    report.changes.length === 0
      ? "in sync: the kernel matches the leases"
      : result.repaired
        ? `repaired: made ${report.changes.length} change(s)`
        : `out of sync: ${report.changes.length} change(s) needed; run \`weft doctor --repair\` (the daemon also repairs on its next reconcile)`;
  return [
    `backend ${result.backend}, underlay ${result.device}, own subnet ${result.ownSubnet}, ${result.peers} peer lease(s)`,
    section("desired", report.desired),
    section("actual", report.actual),
    section(result.repaired ? "changes made" : "changes needed", report.changes),
    ...(result.refused.length > 0 ? [section("peers that cannot be served", result.refused)] : []),
    verdict,
    "",
  ].join("\n");
}

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: "doctor",
  describe: "compare this host's routes/neighbours/FDB with the leases in etcd; --repair fixes them",
  builder: (yargs: Argv) =>
    defineStoreOptions(yargs)
      .option("iface", { type: "string", describe: "as for weft run: the underlay interface (name or IPv4), repeatable" })
      .option("iface-regex", { type: "string", describe: "as for weft run" })
      .option("iface-can-reach", { type: "string", describe: "as for weft run" })
      .option("public-ip", { type: "string", describe: "as for weft run" })
      .option("subnet-file", { type: "string", default: "/run/flannel/subnet.env", describe: "the daemon's subnet file (finds this host's lease)" })
      .option("state-dir", { type: "string", default: "/var/lib/weft", describe: "the daemon's state dir (the saved VTEP MAC)" })
      .option("repair", { type: "boolean", default: false, describe: "apply the changes" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" }),
  handler: async (args) => {
    const result = await withStore(args, (store) => diagnose(store, args));
    if (typeof result === "string") {
      process.stdout.write(`${result}\n`);
      return;
    }
    process.stdout.write(args.json ? `${JSON.stringify(result, null, 2)}\n` : formatDoctorResult(result));
    // Scripts can tell "found drift and did not fix it" from "in sync" or "repaired".
    if (result.report.changes.length > 0 && !result.repaired) process.exitCode = 3;
  },
};
