import type { Argv, CommandModule } from "yargs";
import { Daemon } from "../daemon.js";
import { DEFAULT_RECONCILE_INTERVAL_SECONDS, DEFAULT_RULES_RESYNC_SECONDS, MAX_RENEW_MARGIN_MINUTES, type DaemonOptions } from "../config/daemon-options.js";
import { defineInterfaceOptions, interfaceSelectionFromArgs, type InterfaceArgs } from "./interface-flags.js";
import { defineStoreOptions, lastBoolean, lastNumber, lastString, storeOptionsFromArgs, type StoreArgs } from "./store-flags.js";
import { createLogger } from "../observe/logger.js";
import { ConfigurationError } from "../errors/configuration-error.js";
import { serviceNotifierFromEnv } from "../host/systemd/service-notifier.js";

/**
 * `weft run`: the daemon. Flags and their FLANNELD_* variables are flanneld's (flannel-compat §4), so a
 * flanneld unit works with weft swapped in; weft's own additions are marked as such.
 */
export interface RunArgs extends StoreArgs, InterfaceArgs {
  "subnet-file": string;
  "subnet-lease-renew-margin": number;
  "subnet-lease-ttl": number;
  "ip-masq": boolean;
  "ip-masq-fully-random-disable": boolean;
  "iptables-forward-rules": boolean;
  "iptables-resync": number;
  "healthz-ip": string;
  "healthz-port": number;
  "state-dir": string;
  "reconcile-interval": number;
  "kube-subnet-mgr": boolean;
  "log-level": string;
  "peer-probe-interval": number;
  "restart-hold": number;
}

export function defineRunOptions<T>(yargs: Argv<T>): Argv<T & RunArgs> {
  // Every flag from its FLANNELD_* variable too, as flanneld (a flanneld unit's environment works).
  return defineInterfaceOptions(defineStoreOptions(yargs.env("FLANNELD")))
    .option("subnet-file", { coerce: lastString, type: "string", default: "/run/flannel/subnet.env", describe: "where to write subnet.env" })
    .option("subnet-lease-renew-margin", { coerce: lastNumber, type: "number", default: 60, describe: `minutes before expiry to renew the lease (1..${MAX_RENEW_MARGIN_MINUTES})` })
    .option("subnet-lease-ttl", { coerce: lastNumber, type: "number", default: 86_400, describe: "[weft] TTL in seconds of newly granted leases" })
    .option("ip-masq", { coerce: lastBoolean, type: "boolean", default: false, describe: "masquerade traffic leaving the overlay" })
    .option("ip-masq-fully-random-disable", { coerce: lastBoolean, type: "boolean", default: false, describe: "do not use fully-random port mapping" })
    .option("iptables-forward-rules", { coerce: lastBoolean, type: "boolean", default: true, describe: "accept forwarded traffic of the Network (Docker sets FORWARD to DROP)" })
    .option("iptables-resync", { coerce: lastNumber, type: "number", default: DEFAULT_RULES_RESYNC_SECONDS, describe: "seconds between periodic checks of the traffic rules (they are also checked on every nftables change; flanneld's default: 5)" })
    .option("healthz-ip", { coerce: lastString, type: "string", default: "0.0.0.0", describe: "listen address of /healthz, /readyz and /metrics" })
    .option("healthz-port", { coerce: lastNumber, type: "number", default: 0, describe: "listen port of /healthz, /readyz and /metrics (0 = off)" })
    .option("state-dir", { coerce: lastString, type: "string", default: "/var/lib/weft", describe: "[weft] state kept across restarts" })
    .option("reconcile-interval", { coerce: lastNumber, type: "number", default: DEFAULT_RECONCILE_INTERVAL_SECONDS, describe: "[weft] seconds between periodic repairs of kernel state (kernel events trigger one at once)" })
    .option("kube-subnet-mgr", { coerce: lastBoolean, type: "boolean", default: false, hidden: true })
    .option("peer-probe-interval", { coerce: lastNumber, type: "number", default: 0, describe: "[weft] seconds between probes of every peer (underlay echo, path MTU, overlay echo; 0 = off; needs CAP_NET_RAW)" })
    .option("restart-hold", { coerce: lastNumber, type: "number", default: 30, describe: "[weft] seconds a stopped udp/userspace-vxlan daemon keeps its TUN and sockets open for the next start, so a restart drops nothing (0 = off)" })
    .option("log-level", { coerce: lastString, type: "string", default: "info", choices: ["trace", "debug", "info", "warn", "error", "fatal"], describe: "[weft] lowest level logged" });
}

/** Turns parsed flags into checked options; errors name the flag. */
export function daemonOptionsFromArgs(args: RunArgs): DaemonOptions {
  if (args["kube-subnet-mgr"]) throw new ConfigurationError("--kube-subnet-mgr: weft uses etcd only; drop the flag and set --etcd-endpoints");
  const margin = args["subnet-lease-renew-margin"];
  if (!Number.isInteger(margin) || margin < 1 || margin > MAX_RENEW_MARGIN_MINUTES) {
    throw new ConfigurationError(`--subnet-lease-renew-margin: ${margin} is outside 1..${MAX_RENEW_MARGIN_MINUTES} minutes`);
  }
  const ttl = args["subnet-lease-ttl"];
  if (!Number.isInteger(ttl) || ttl < 10) throw new ConfigurationError(`--subnet-lease-ttl: ${ttl} must be a whole number of seconds ≥ 10`);
  // A margin at or beyond the TTL would renew constantly: renew at half the TTL instead.
  const renewMarginMs = Math.min(margin * 60_000, (ttl * 1000) / 2);
  const interfaceSelection = interfaceSelectionFromArgs(args);
  const healthzPort = args["healthz-port"];
  if (!Number.isInteger(healthzPort) || healthzPort < 0 || healthzPort > 65535) {
    throw new ConfigurationError(`--healthz-port: ${healthzPort} is not a port number (0 disables the server)`);
  }
  const probeInterval = args["peer-probe-interval"];
  if (!(probeInterval === 0 || probeInterval >= 1)) throw new ConfigurationError(`--peer-probe-interval: ${probeInterval} must be 0 (off) or at least 1 second`);
  const restartHold = args["restart-hold"];
  if (!(restartHold >= 0 && restartHold <= 3600)) throw new ConfigurationError(`--restart-hold: ${restartHold} must be 0 (off) to 3600 seconds`);
  for (const flag of ["iptables-resync", "reconcile-interval"] as const) {
    if (!(args[flag] > 0)) throw new ConfigurationError(`--${flag}: ${args[flag]} must be a positive number of seconds`);
  }
  return {
    store: storeOptionsFromArgs(args),
    interfaceSelection,
    subnetFile: args["subnet-file"],
    stateDir: args["state-dir"],
    renewMarginMs,
    leaseTtlSeconds: ttl,
    ipMasq: args["ip-masq"],
    ipMasqFullyRandom: !args["ip-masq-fully-random-disable"],
    forwardRules: args["iptables-forward-rules"],
    rulesResyncMs: args["iptables-resync"] * 1000,
    reconcileIntervalMs: args["reconcile-interval"] * 1000,
    restartHoldMs: restartHold * 1000,
    healthz: healthzPort > 0 ? { host: args["healthz-ip"], port: healthzPort } : undefined,
    peerProbeIntervalMs: probeInterval > 0 ? probeInterval * 1000 : undefined,
  };
}

/** `weft run --help` in flanneld's terms: the flags by concern, and how FLANNELD_* maps to them. */
const HELP_GROUPS: ReadonlyArray<readonly [string, readonly (keyof RunArgs)[]]> = [
  ["etcd:", ["etcd-endpoints", "etcd-prefix", "etcd-keyfile", "etcd-certfile", "etcd-cafile", "etcd-username", "etcd-password", "etcd-call-timeout"]],
  ["Interface:", ["iface", "iface-regex", "iface-can-reach", "public-ip", "public-ipv6"]],
  ["Lease:", ["subnet-file", "subnet-lease-renew-margin", "subnet-lease-ttl"]],
  ["Traffic rules:", ["ip-masq", "ip-masq-fully-random-disable", "iptables-forward-rules", "iptables-resync"]],
  ["Health:", ["healthz-ip", "healthz-port"]],
  ["weft's own:", ["state-dir", "reconcile-interval", "peer-probe-interval", "restart-hold", "log-level"]],
];

const HELP_EPILOG = [
  "Every flag can also be set as FLANNELD_<FLAG>: the flag name in upper case with dashes as underscores",
  "(--etcd-endpoints is FLANNELD_ETCD_ENDPOINTS, --ip-masq is FLANNELD_IP_MASQ=true); the command line wins.",
  "--iface and --iface-regex take several comma-separated values there. Flags may be written with one dash",
  "as flanneld's (-etcd-endpoints=URL); a repeated flag overrides the earlier one, except the repeatable ones.",
  "Any other FLANNELD_* variable is refused as an unknown flag. The systemd unit reads them from /etc/default/weft.",
  "Exit codes: 0 clean stop (SIGTERM/SIGINT; lease and kernel state kept), 1 unexpected failure,",
  "78 configuration error (unknown or invalid flag or FLANNELD_* value, missing CAP_NET_ADMIN): fix the",
  "configuration; weft.service does not restart on 78. etcd outages, a missing network config and an",
  "unreadable or refused --etcd-*file or password are retried (changed TLS files are read again), never an exit.",
  "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP is logged and ignored.",
].join("\n");

export function describeRunHelp<T>(yargs: Argv<T>): Argv<T> {
  let described = yargs;
  for (const [group, flags] of HELP_GROUPS) described = described.group([...flags], group);
  return described
    .example("$0 run --etcd-endpoints=http://etcd1:2379 --ip-masq", "lease from etcd1, masquerade outbound traffic")
    .example("FLANNELD_ETCD_ENDPOINTS=http://etcd1:2379 $0 run", "the same etcd, from the environment")
    .example("$0 run -etcd-endpoints=http://etcd1:2379 -iface=eth1", "flanneld's one-dash style; underlay on eth1")
    .epilog(HELP_EPILOG);
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run",
  describe: "run the daemon: lease a subnet, program the backend, keep watching peers",
  builder: (yargs) => describeRunHelp(defineRunOptions(yargs)),
  handler: async (args) => {
    const options = daemonOptionsFromArgs(args);
    const logger = createLogger({ level: args["log-level"] as "info" });
    // Reads and removes NOTIFY_SOCKET/WATCHDOG_* (children must not notify in our name); loads the addon only when set.
    const notifier = serviceNotifierFromEnv(process.env, logger);
    const daemon = new Daemon(options, logger, notifier);
    daemon.handleSignals();
    await daemon.run();
  },
};
