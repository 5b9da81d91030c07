import type { Argv, CommandModule } from "yargs";
import { Registry } from "prom-client";
import { canLoadLeaseSet } from "../backend/lease-set-loader.js";
import { findBackend } from "../backend/registry.js";
import { describeReconcileChange, formatReconcileReport, isDeviceChange, type ReconcileReport, type ReconcileReportText } from "../backend/reconcile-report.js";
import { parseNetworkConfig } from "../config/network-config.js";
import { selectExternalInterface } from "../config/interface-selection.js";
import { readSubnetEnv } from "../host/subnet-env.js";
import { decodeLeases } from "../lease/stored-lease.js";
import { createLogger } from "../observe/logger.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { findOwnLease, ownLeaseClues } from "./own-lease.js";
import { errorMessage } from "../errors/error-message.js";
import type { PeerProbeResult } from "../probe/peer-probe.js";
import { formatProbeTable, probeResultJson, type PeerProbeJson } from "../probe/probe-report.js";
import { probePeersOfThisHost } from "./probe.js";
import { defineInterfaceOptions, interfaceSelectionFromArgs, type InterfaceArgs } from "./interface-flags.js";
import { defineStoreOptions, lastString, withStore, type StoreArgs } from "./store-flags.js";
import { sameSubnet } from "../net/ip-subnet.js";
import { primarySubnet } from "../lease/subnet-key.js";

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
  probe: boolean;
}

export { findOwnLease };

export interface DoctorResult {
  backend: string;
  device: string;
  /** The own IPv4 subnet; null in an IPv6-only network. */
  ownSubnet: string | null;
  /** The own lease's IPv6 subnet (dual stack); null for an IPv4-only lease. */
  ownIpv6Subnet: string | null;
  peers: number;
  report: ReconcileReport;
  refused: string[];
  repaired: boolean;
}

/** `weft doctor --json`: the result with the report as lines, as the text output shows them. */
export interface DoctorResultJson extends Omit<DoctorResult, "report"> {
  report: ReconcileReportText;
}

export async function diagnose(store: EtcdStore, args: DoctorArgs): Promise<DoctorResult | string> {
  const configKey = await store.get(store.configKey);
  if (!configKey) throw new Error(`no network config at ${store.configKey}; write one with \`weft config set\``);
  const config = parseNetworkConfig(configKey.value);
  const factory = findBackend(config.backend.type);
  // As the daemon: a dual-stack network's backend needs the interface's IPv6 address for its v6 objects.
  const external = await selectExternalInterface(interfaceSelectionFromArgs(args), { ipv6: config.enableIPv6, ipv4: config.enableIPv4 });
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
    const clues = ownLeaseClues(config, env, external);
    const own = findOwnLease(leases, clues.fromFile, clues.address, subnetFile);
    const peers = leases.filter((lease) => !sameSubnet(primarySubnet(lease), primarySubnet(own)));
    await backend.loadLeaseSet(own, peers);
    let report = await backend.reconcile({ dryRun: true });
    if (args.repair && report.changes.length > 0) {
      // Device-level changes a reconcile may make; wrong flags turn them into damage.
      const risky = report.changes.filter(isDeviceChange);
      if (risky.length > 0 && !args.force) {
        throw new Error(
          `--repair would change the device itself: ${risky.map(describeReconcileChange).join("; ")}. If this doctor's --iface/--public-ip/--state-dir ` +
            `(${external.name}, ${external.publicIP ?? external.publicIPv6 ?? "-"}, ${args["state-dir"]}) differ from the daemon's, that moves the device to the wrong ` +
            "interface or gives it a new MAC and cuts this host off its peers: pass the daemon's flags, or add --force to make these changes",
        );
      }
      report = await backend.reconcile({ dryRun: false });
    }
    return {
      backend: config.backend.type,
      device: external.name,
      ownSubnet: own.subnet?.toString() ?? null,
      ownIpv6Subnet: own.ipv6Subnet?.toString() ?? null,
      peers: peers.length,
      report,
      refused: backend.refusedPeers(),
      repaired: args.repair && report.changes.length > 0,
    };
  } finally {
    await backend.stop();
  }
}

/** The probe part of doctor: the verdict per peer, or why probing could not run (no raw-socket, no CAP_NET_RAW). */
export type DoctorProbes = { peers: PeerProbeResult[] } | { unavailable: string };

export async function probeForDoctor(store: EtcdStore, args: DoctorArgs): Promise<DoctorProbes> {
  try {
    return { peers: (await probePeersOfThisHost(store, { ...args, count: 2 })).results };
  } catch (error) {
    return { unavailable: errorMessage(error) };
  }
}

export function formatDoctorProbes(probes: DoctorProbes): string {
  if ("unavailable" in probes) return `peer probes: not run: ${probes.unavailable}\n`;
  const problems = probes.peers.filter((result) => result.verdict.kind !== "ok").length;
  return `peer probes (${probes.peers.length} peer(s), ${problems} with a problem):\n${formatProbeTable(probes.peers)}`;
}

export function doctorProbesJson(probes: DoctorProbes): { peers: PeerProbeJson[] } | { unavailable: string } {
  return "unavailable" in probes ? probes : { peers: probes.peers.map(probeResultJson) };
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
    `backend ${result.backend}, underlay ${result.device}, own subnet ${[result.ownSubnet, result.ownIpv6Subnet].filter((subnet) => subnet !== null).join(" and ")}, ${result.peers} peer lease(s)`,
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
      .option("json", { type: "boolean", default: false, describe: "print JSON" })
      .option("probe", { type: "boolean", default: true, describe: "also probe every peer as `weft probe` does (--no-probe skips it)" }),
  handler: async (args) => {
    const [result, probes] = await withStore(args, async (store) => {
      const diagnosed = await diagnose(store, args);
      return [diagnosed, args.probe ? await probeForDoctor(store, args) : undefined] as const;
    });
    if (args.json) {
      const kernel = typeof result === "string" ? { note: result } : doctorResultJson(result);
      process.stdout.write(`${JSON.stringify({ ...kernel, ...(probes ? { probes: doctorProbesJson(probes) } : {}) }, null, 2)}\n`);
    } else {
      process.stdout.write(typeof result === "string" ? `${result}\n` : formatDoctorResult(result));
      if (probes) process.stdout.write(formatDoctorProbes(probes));
    }
    // Scripts can tell "found drift and did not fix it" from "in sync" or "repaired"; and a peer in trouble.
    if (typeof result !== "string" && result.report.changes.length > 0 && !result.repaired) process.exitCode = 3;
    if (probes && "peers" in probes && probes.peers.some((peer) => peer.verdict.kind !== "ok")) process.exitCode = 3;
  },
};
