import type { Argv, CommandModule } from "yargs";
import { selectExternalInterface } from "../config/interface-selection.js";
import { parseNetworkConfig } from "../config/network-config.js";
import { readSubnetEnv } from "../host/subnet-env.js";
import { decodeLeases } from "../lease/stored-lease.js";
import type { LeaseSubnets } from "../lease/types.js";
import { createLogger } from "../observe/logger.js";
import type { PeerProbeResult, ProbeSettings } from "../probe/peer-probe.js";
import { Pingers } from "../probe/pinger.js";
import { probeAll } from "../probe/probe-round.js";
import { formatProbeTable, probeResultJson } from "../probe/probe-report.js";
import { encapsulationOf, probeTargets, probeUnderlayMtu } from "../probe/probe-targets.js";
import { openIcmpSocket } from "../probe/raw-icmp-socket.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { findOwnLease, ownLeaseClues } from "./own-lease.js";
import { primarySubnet } from "../lease/subnet-key.js";
import { defineInterfaceOptions, interfaceSelectionFromArgs, type InterfaceArgs } from "./interface-flags.js";
import { defineStoreOptions, lastNumber, lastString, withStore, type StoreArgs } from "./store-flags.js";
import { sameSubnet } from "../net/ip-subnet.js";

/**
 * `weft probe`: for every peer lease, an underlay echo (RTT, loss), a DF echo at the underlay
 * MTU (path MTU) and, through the encapsulation, a small and a FLANNEL_MTU-sized DF echo to the
 * peer's overlay address; then a verdict a person can act on. A dual-stack peer is probed per
 * family (its IPv4 subnet via PublicIP, its IPv6 subnet via PublicIPv6, ICMPv6), an IPv6-only
 * peer over IPv6. Reads etcd and the subnet file as doctor does, so it works whether or not the
 * daemon runs. Needs CAP_NET_RAW.
 */
export interface ProbeArgs extends StoreArgs, InterfaceArgs {
  "subnet-file": string;
  count: number;
  timeout: number;
  json: boolean;
}

export interface ProbeRun {
  ownSubnet: string;
  /** Peer leases; `results` has a path per family each holds (and the backend carries). */
  peerCount: number;
  settings: ProbeSettings;
  results: PeerProbeResult[];
}

/** "10.66.5.0/24", "10.66.5.0/24 fd66:0:0:5::/64" (dual-stack) or "fd66:0:0:5::/64" (IPv6-only). */
function ownSubnets(own: LeaseSubnets): string {
  return [own.subnet, own.ipv6Subnet].flatMap((subnet) => (subnet ? [subnet.toString()] : [])).join(" ");
}

export const DEFAULT_PROBE_COUNT = 3;
export const DEFAULT_PROBE_TIMEOUT_S = 1;

/** Everything `weft probe` does but printing; `weft doctor` calls it too. */
export async function probePeersOfThisHost(
  store: EtcdStore,
  args: InterfaceArgs & { "subnet-file": string; count?: number; timeout?: number },
): Promise<ProbeRun> {
  const configKey = await store.get(store.configKey);
  if (!configKey) throw new Error(`no network config at ${store.configKey}; write one with \`weft config set\``);
  const config = parseNetworkConfig(configKey.value);
  // The families the network has, as the daemon asks: an IPv6-only host's address is its IPv6 one.
  const external = await selectExternalInterface(interfaceSelectionFromArgs(args), { ipv6: config.enableIPv6, ipv4: config.enableIPv4 });
  const logger = createLogger({ name: "weft-probe", level: "warn" });
  const leases = decodeLeases((await store.list(store.subnetsPrefix)).keys, logger);
  const subnetFile = args["subnet-file"];
  const env = await readSubnetEnv(subnetFile).catch(() => undefined);
  const clues = ownLeaseClues(config, env, external);
  const own = findOwnLease(leases, clues.fromFile, clues.address, subnetFile);
  const underlayMtu = probeUnderlayMtu(config.backend, external.mtu);
  // Without a subnet file: FLANNEL_MTU as the daemon computes it, the larger overhead of the families the network has.
  const overhead = Math.max(...(config.ipv4 ? [encapsulationOf(config.backend, 4).overheadBytes] : []), ...(config.ipv6 ? [encapsulationOf(config.backend, 6).overheadBytes] : []));
  const settings: ProbeSettings = {
    underlayMtu,
    overlayMtu: env?.mtu ?? underlayMtu - overhead,
    echoes: args.count ?? DEFAULT_PROBE_COUNT,
    echoIntervalMs: 100,
    timeoutMs: (args.timeout ?? DEFAULT_PROBE_TIMEOUT_S) * 1000,
  };
  const peers = leases.filter((lease) => !sameSubnet(primarySubnet(lease), primarySubnet(own)));
  const pinger = new Pingers(openIcmpSocket);
  try {
    pinger.open(4); // Fails at once, saying why, without CAP_NET_RAW.
    return { ownSubnet: ownSubnets(own), peerCount: peers.length, settings, results: await probeAll(pinger, probeTargets(peers, config.backend), settings) };
  } finally {
    pinger.close();
  }
}

export const probeCommand: CommandModule<object, ProbeArgs> = {
  command: "probe",
  describe: "probe every peer: underlay echo (RTT, loss), path MTU, overlay echo through the encapsulation; a verdict each",
  builder: (yargs: Argv) =>
    defineInterfaceOptions(defineStoreOptions(yargs))
      .option("subnet-file", { coerce: lastString, type: "string", default: "/run/flannel/subnet.env", describe: "the daemon's subnet file (this host's lease and FLANNEL_MTU)" })
      .option("count", { coerce: lastNumber, type: "number", default: DEFAULT_PROBE_COUNT, describe: "underlay echoes per peer (loss is counted over them)" })
      .option("timeout", { coerce: lastNumber, type: "number", default: DEFAULT_PROBE_TIMEOUT_S, describe: "seconds to wait for each answer" })
      .option("json", { type: "boolean", default: false, describe: "print JSON" })
      .check((args) => {
        if (!Number.isInteger(args.count) || args.count < 1 || args.count > 100) throw new Error(`--count: ${args.count} must be a whole number between 1 and 100`);
        if (!(args.timeout > 0 && args.timeout <= 30)) throw new Error(`--timeout: ${args.timeout} must be a number of seconds in (0, 30]`);
        return true;
      }),
  handler: async (args) => {
    const run = await withStore(args, (store) => probePeersOfThisHost(store, args));
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ ownSubnet: run.ownSubnet, underlayMtu: run.settings.underlayMtu, overlayMtu: run.settings.overlayMtu, peers: run.results.map(probeResultJson) }, null, 2)}\n`);
    } else {
      process.stdout.write(`own subnet ${run.ownSubnet}, underlay MTU ${run.settings.underlayMtu}, FLANNEL_MTU ${run.settings.overlayMtu}, ${run.peerCount} peer(s), ${run.results.length} path(s)\n`);
      process.stdout.write(formatProbeTable(run.results));
    }
    // Scripts can tell "every peer ok" from "some peer needs attention".
    if (run.results.some((result) => result.verdict.kind !== "ok")) process.exitCode = 3;
  },
};
