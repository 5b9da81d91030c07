import type { Argv, CommandModule } from "yargs";
import { Registry } from "prom-client";
import { canLoadLeaseSet } from "../backend/lease-set-loader.js";
import { findBackend } from "../backend/registry.js";
import { describeReconcileChange, formatReconcileReport, isDeviceChange, type ReconcileReport, type ReconcileReportText } from "../backend/reconcile-report.js";
import { parseNetworkConfig } from "../config/network-config.js";
import { selectExternalInterface } from "../config/interface-selection.js";
import { previousSubnet, readSubnetEnv } from "../host/subnet-env.js";
import { decodeLeases } from "../lease/stored-lease.js";
import type { Lease } from "../lease/types.js";
import type { Ipv4Subnet } from "../net/ipv4.js";
import { createLogger } from "../observe/logger.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineInterfaceOptions, interfaceSelectionFromArgs, type InterfaceArgs } from "./interface-flags.js";
import { defineStoreOptions, lastString, withStore, type StoreArgs } from "./store-flags.js";

/**
 * `weft doctor`: compares this host's kernel state with what the leases in etcd say it should
 * be, using the daemon's own backend code (the same desired-state and reconcile functions), and
 * prints desired vs actual and the changes; `--repair` makes them.
 *
 * Why read etcd rather than ask the running daemon: doctor must work exactly when the daemon is
 * down, wedged or was never started, and etcd is the source of truth the daemon itself follows.
 * This host's own lease is the subnet file's FLANNEL_SUBNET if that lease has our PublicIP,
 * else the one lease with our PublicIP.
 *
 * Doctor resolves --iface/--public-ip/--state-dir itself; when they differ from the daemon's,
 * a repair could move flannel.N to another interface or give it a new MAC. So --repair refuses
 * changes to the device itself (create, recreate, address) unless --force.
 */
export interface DoctorArgs extends StoreArgs, InterfaceArgs {
  "subnet-file": string;
  "state-dir": string;
  repair: boolean;
  force: boolean;
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

/** `weft doctor --json`: the result with the report as lines, as the text output shows them. */
export interface DoctorResultJson extends Omit<DoctorResult, "report"> {
  report: ReconcileReportText;
}

/**
 * This host's lease: the subnet file's subnet, if that lease advertises our PublicIP (a subnet
 * file copied from another host, or a lease since taken over, must not be mistaken for ours);
 * else the only lease advertising our PublicIP. Throws saying what was found.
 */
export function findOwnLease(leases: readonly Lease[], fromFile: Ipv4Subnet | undefined, publicIP: string, subnetFile: string): Lease {
  const fileLease = fromFile && leases.find((lease) => lease.subnet.equals(fromFile));
  if (fileLease && fileLease.attrs.publicIP === publicIP) return fileLease;
  const byPublicIP = leases.filter((lease) => lease.attrs.publicIP === publicIP);
  if (byPublicIP.length === 1) return byPublicIP[0] as Lease;
  const fileNote = !fromFile
    ? `the subnet file ${subnetFile} names no subnet`
    : fileLease
      ? `the subnet file ${subnetFile} names ${fromFile}, whose lease advertises PublicIP ${fileLease.attrs.publicIP}, not ${publicIP}`
      : `the subnet file ${subnetFile} names ${fromFile}, which has no lease`;
  if (byPublicIP.length > 1) {
    throw new Error(
      `cannot tell this host's lease: ${fileNote}, and ${byPublicIP.length} leases advertise PublicIP ${publicIP} ` +
        `(${byPublicIP.map((lease) => lease.subnet.toString()).join(", ")}); pass the daemon's --subnet-file`,
    );
  }
  throw new Error(
    `no lease in etcd belongs to this host: ${fileNote}, and no lease advertises PublicIP ${publicIP}; ` +
      "start `weft run` first, or pass the daemon's --subnet-file / --iface / --public-ip",
  );
}

export async function diagnose(store: EtcdStore, args: DoctorArgs): Promise<DoctorResult | string> {
  const configKey = await store.get(store.configKey);
  if (!configKey) throw new Error(`no network config at ${store.configKey}; write one with \`weft config set\``);
  const config = parseNetworkConfig(configKey.value);
  const factory = findBackend(config.backend.type);
  const external = await selectExternalInterface(interfaceSelectionFromArgs(args));
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
    const subnetFile = args["subnet-file"];
    const env = await readSubnetEnv(subnetFile).catch(() => undefined);
    const own = findOwnLease(leases, env ? previousSubnet(env) : undefined, external.publicIP, subnetFile);
    const peers = leases.filter((lease) => !lease.subnet.equals(own.subnet));
    await backend.loadLeaseSet(own, peers);
    let report = await backend.reconcile({ dryRun: true });
    if (args.repair && report.changes.length > 0) {
      // Device-level changes a reconcile may make; wrong flags turn them into damage.
      const risky = report.changes.filter(isDeviceChange);
      if (risky.length > 0 && !args.force) {
        throw new Error(
          `--repair would change the device itself: ${risky.map(describeReconcileChange).join("; ")}. If this doctor's --iface/--public-ip/--state-dir ` +
            `(${external.name}, ${external.publicIP}, ${args["state-dir"]}) differ from the daemon's, that moves the device to the wrong ` +
            "interface or gives it a new MAC and cuts this host off its peers: pass the daemon's flags, or add --force to make these changes",
        );
      }
      report = await backend.reconcile({ dryRun: false });
    }
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

export function doctorResultJson(result: DoctorResult): DoctorResultJson {
  return { ...result, report: formatReconcileReport(result.report) };
}

export function formatDoctorResult(result: DoctorResult): string {
  const section = (title: string, lines: readonly string[]) =>
    [`${title} (${lines.length}):`, ...(lines.length === 0 ? ["  (none)"] : [...lines].sort().map((line) => `  ${line}`))].join("\n");
  const report = formatReconcileReport(result.report);
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
    defineInterfaceOptions(defineStoreOptions(yargs))
      .option("subnet-file", { coerce: lastString, type: "string", default: "/run/flannel/subnet.env", describe: "the daemon's subnet file (finds this host's lease)" })
      .option("state-dir", { coerce: lastString, type: "string", default: "/var/lib/weft", describe: "the daemon's state dir (the saved VTEP MAC)" })
      .option("repair", { type: "boolean", default: false, describe: "apply the changes" })
      .option("force", { type: "boolean", default: false, describe: "with --repair: also create, recreate or re-address the device" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" }),
  handler: async (args) => {
    const result = await withStore(args, (store) => diagnose(store, args));
    if (typeof result === "string") {
      process.stdout.write(`${result}\n`);
      return;
    }
    process.stdout.write(args.json ? `${JSON.stringify(doctorResultJson(result), null, 2)}\n` : formatDoctorResult(result));
    // Scripts can tell "found drift and did not fix it" from "in sync" or "repaired".
    if (result.report.changes.length > 0 && !result.repaired) process.exitCode = 3;
  },
};
