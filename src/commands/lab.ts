import type { Argv, CommandModule } from "yargs";
import { hideBin } from "yargs/helpers";
import { formatCheckMatrix, formatCheckTable } from "../lab/check.js";
import { DEFAULT_IPV6_NETWORK, DEFAULT_LAB_NAME, DEFAULT_NETWORK, buildLab, openLab, teardownLab } from "../lab/lab.js";
import { defaultLabDir } from "../lab/lab-state.js";
import { describeLab } from "../lab/lab-status.js";
import { lastBoolean, lastNumber, lastString } from "./store-flags.js";
import { runAttached } from "../process/run-command.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * `weft lab up|status|exec|check|down`: a whole cluster on one machine, in network
 * namespaces (see src/lab/topology-plan.ts for the picture). All state is in the lab dir, so
 * each subcommand is a separate process.
 */
interface LabArgs {
  name: string;
  "lab-dir"?: string;
}

interface UpArgs extends LabArgs {
  hosts: number;
  containers: number;
  backend: string;
  network: string;
  ipv6: boolean;
  "ipv6-network"?: string;
  "ipv6-only": boolean;
  "backend-option"?: string[];
  internet: boolean;
  "ip-masq": boolean;
  daemons: string;
  "daemon-arg"?: string[];
  "ready-timeout": number;
  "keep-on-failure": boolean;
  docker: boolean;
  "docker-network": boolean;
  "docker-ip6tables": boolean;
}

interface ExecArgs extends LabArgs {
  target: string;
}

/** Lab flags that may stand between `exec` and the target; their values are not the target. */
const EXEC_VALUE_FLAGS = new Set(["--name", "--lab-dir"]);

/**
 * The command of `weft lab exec`, taken from the raw argv so it reaches the namespace exactly
 * as typed (yargs would turn "010" into 10): everything after `--`, or after the target.
 */
export function execCommandLine(rawArgs: readonly string[]): string[] {
  const dashes = rawArgs.indexOf("--");
  if (dashes >= 0) return rawArgs.slice(dashes + 1);
  let index = rawArgs.indexOf("exec") + 1;
  while (index < rawArgs.length) {
    const arg = rawArgs[index] as string;
    if (EXEC_VALUE_FLAGS.has(arg)) index += 2;
    else if (arg.startsWith("--") && EXEC_VALUE_FLAGS.has(arg.slice(0, arg.indexOf("=")))) index += 1;
    else break;
  }
  return rawArgs.slice(index + 1);
}

interface CheckArgs extends LabArgs {
  json: boolean;
  list: boolean;
}

function defineLabOptions<T>(yargs: Argv<T>): Argv<T & LabArgs> {
  return yargs
    .option("name", {
      type: "string",
      coerce: lastString,
      default: DEFAULT_LAB_NAME,
      describe: "lab name; its namespaces are <name>-ul, <name>-etcd, <name>-h1, <name>-h1c1, …",
    })
    .option("lab-dir", { type: "string", coerce: lastString, describe: "where state, logs and subnet files live (default /run/weft-lab/<name>)" });
}

/** Every lab command creates or enters network namespaces, which only root may do. */
function requireRoot(): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new Error("weft lab needs root to create and enter network namespaces: run it with sudo");
  }
}

function labDirOf(args: LabArgs): string {
  requireRoot();
  return args["lab-dir"] ?? defaultLabDir(args.name);
}

/** "VNI=4" → ["VNI", 4]: numbers and booleans are typed, everything else stays a string. */
function parseBackendOption(text: string): [string, unknown] {
  const equals = text.indexOf("=");
  if (equals <= 0) throw new Error(`--backend-option "${text}": expected Key=value, e.g. VNI=4 or DirectRouting=true`);
  const key = text.slice(0, equals);
  const raw = text.slice(equals + 1);
  if (/^-?\d+$/.test(raw)) return [key, Number(raw)];
  if (raw === "true" || raw === "false") return [key, raw === "true"];
  return [key, raw];
}

const upCommand: CommandModule<object, UpArgs> = {
  command: "up",
  describe: "build the lab: underlay, etcd, a weft daemon per host, docker0 and containers",
  builder: (yargs) =>
    defineLabOptions(yargs)
      .option("hosts", { type: "number", coerce: lastNumber, default: 3, describe: "number of hosts" })
      .option("containers", { type: "number", coerce: lastNumber, default: 2, describe: "containers per host" })
      .option("backend", { type: "string", coerce: lastString, default: "vxlan", describe: "Backend.Type of the network config (udp, vxlan, host-gw, alloc, …)" })
      .option("network", { type: "string", coerce: lastString, default: DEFAULT_NETWORK, describe: "Network of the config" })
      .option("ipv6", { type: "boolean", coerce: lastBoolean, default: false, describe: `dual-stack: an IPv6 underlay (fd77::/64) and EnableIPv6 with IPv6Network (default ${DEFAULT_IPV6_NETWORK})` })
      .option("ipv6-network", { type: "string", coerce: lastString, describe: "IPv6Network of the config (implies --ipv6)" })
      .option("ipv6-only", {
        type: "boolean",
        coerce: lastBoolean,
        default: false,
        describe: "an IPv6-only overlay: EnableIPv4 false, docker0 and containers IPv6 only, every tunnel over the IPv6 underlay (the underlay keeps its IPv4 for etcd; implies --ipv6)",
      })
      .option("backend-option", { type: "string", array: true, describe: "extra Backend field, Key=value (repeatable), e.g. VNI=4" })
      .option("internet", { type: "boolean", coerce: lastBoolean, default: true, describe: "add the <name>-inet namespace standing in for the outside world" })
      .option("ip-masq", { type: "boolean", coerce: lastBoolean, default: false, describe: "run the daemons with --ip-masq" })
      .option("daemons", { type: "string", coerce: lastString, default: "weft", choices: ["weft", "none"], describe: "none: no daemons, static subnet.env per host (topology only)" })
      .option("daemon-arg", { type: "string", array: true, describe: "extra flag for every `weft run` (repeatable), e.g. --daemon-arg=--log-level=debug" })
      .option("ready-timeout", { type: "number", coerce: lastNumber, default: 30, describe: "seconds to wait for each daemon to be ready" })
      .option("keep-on-failure", { type: "boolean", coerce: lastBoolean, default: false, describe: "if up fails, leave the lab (and its logs) for inspection" })
      .option("docker", {
        type: "boolean",
        coerce: lastBoolean,
        default: false,
        describe:
          "a real dockerd per host (--bip/--mtu from subnet.env, as flannel's Docker drop-in; with --ipv6 also --ipv6 --fixed-cidr-v6 and --ip6tables) running the containers (needs docker.io, busybox-static)",
      })
      .option("docker-network", {
        type: "boolean",
        coerce: lastBoolean,
        default: false,
        describe: "with a dockerd per host: leave docker0 alone and attach the containers to `docker network create --subnet=$FLANNEL_SUBNET …` (implies --docker)",
      })
      .option("docker-ip6tables", {
        type: "boolean",
        coerce: lastBoolean,
        default: true,
        describe: "with --docker and IPv6: give dockerd --ip6tables --experimental (Docker ≥ 27's default); --no-docker-ip6tables: only what weft docker-opts writes",
      }),
  handler: async (args) => {
    const backendOptions = Object.fromEntries((args["backend-option"] ?? []).map(parseBackendOption));
    const lab = await buildLab({
      name: args.name,
      labDir: labDirOf(args),
      hosts: args.hosts,
      containersPerHost: args.containers,
      backend: args.backend,
      backendOptions,
      network: args.network,
      ipv6: args.ipv6 || args["ipv6-network"] !== undefined,
      ipv6Only: args["ipv6-only"],
      ...(args["ipv6-network"] !== undefined ? { ipv6Network: args["ipv6-network"] } : {}),
      internet: args.internet,
      ipMasq: args["ip-masq"],
      daemons: args.daemons === "none" ? "none" : "weft",
      daemonArgs: args["daemon-arg"] ?? [],
      readyTimeoutMs: args["ready-timeout"] * 1000,
      keepOnFailure: args["keep-on-failure"],
      docker: args["docker-network"] ? "network" : args.docker ? "bip" : undefined,
      dockerIp6tables: args["docker-ip6tables"],
      log: (line) => process.stderr.write(`lab: ${line}\n`),
    });
    process.stdout.write(await describeLab(lab, false));
    const t = lab.timings;
    if (t) {
      process.stdout.write(
        `\nup in ${(t.total / 1000).toFixed(1)} s (namespaces+underlay ${t.underlay} ms, etcd ${t.etcd} ms, ` +
          `daemons ready ${t.daemons} ms${t.containers ? `, containers ${t.containers} ms` : ""})\n`,
      );
    }
    const flags = args.name === DEFAULT_LAB_NAME ? "" : ` --name ${args.name}`;
    process.stdout.write(
      `next: weft lab check${flags}   |   weft lab exec${flags} h1c1 -- ping ${lab.containers.at(-1)?.address ?? lab.containers.at(-1)?.state.addressV6 ?? "<address>"}   |   weft lab down${flags}\n`,
    );
  },
};

const statusCommand: CommandModule<object, LabArgs> = {
  command: "status",
  describe: "show the lab's hosts, subnets, containers, and whether daemons and etcd are alive",
  builder: (yargs) => defineLabOptions(yargs),
  handler: async (args) => {
    const lab = await openLab({ name: args.name, labDir: labDirOf(args) });
    process.stdout.write(await describeLab(lab, true));
  },
};

const execCommand: CommandModule<object, ExecArgs> = {
  command: "exec <target> [command..]",
  describe: "run a command in a lab namespace: a host (h1), a container (h1c1), etcd, ul or inet; e.g. weft lab exec h1 -- ip route",
  builder: (yargs) =>
    defineLabOptions(yargs)
      // `weft lab exec h1 ip -br link` works too: options after the target belong to the command.
      .parserConfiguration({ "unknown-options-as-args": true })
      .positional("target", { type: "string", demandOption: true, describe: "h1, h1c1, etcd, ul or inet" })
      .positional("command", { type: "string", array: true, describe: "the command and its arguments, best after --" }),
  handler: async (args) => {
    const lab = await openLab({ name: args.name, labDir: labDirOf(args) });
    const namespace = lab.namespaceOf(args.target);
    const [program = process.env.SHELL ?? "/bin/sh", ...programArgs] = execCommandLine(hideBin(process.argv));
    process.exitCode = await runAttached(program, programArgs, { netns: namespace }).then(
      ({ exitCode, signal }) => exitCode ?? (signal ? 128 : 1),
      (error: unknown) => {
        process.stderr.write(`weft: cannot run ip netns exec ${namespace}: ${errorMessage(error)}\n`);
        return 127;
      },
    );
  },
};

const checkCommand: CommandModule<object, CheckArgs> = {
  command: "check",
  describe: "ping every container from every other one, plus a max-size don't-fragment ping per host; exit 1 on any failure",
  builder: (yargs) =>
    defineLabOptions(yargs)
      .option("json", { type: "boolean", coerce: lastBoolean, default: false, describe: "print JSON" })
      .option("list", { type: "boolean", coerce: lastBoolean, default: false, describe: "one line per ping, with round-trip times, instead of the matrix" }),
  handler: async (args) => {
    const lab = await openLab({ name: args.name, labDir: labDirOf(args) });
    const started = Date.now();
    const { ok, results } = await lab.checkTable();
    if (args.json) process.stdout.write(`${JSON.stringify({ ok, results }, null, 2)}\n`);
    else {
      const text = args.list ? formatCheckTable(results) : formatCheckMatrix(results);
      process.stdout.write(`${text} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    }
    if (!ok) process.exitCode = 1;
  },
};

const downCommand: CommandModule<object, LabArgs> = {
  command: "down",
  describe: "remove everything the lab made (processes, namespaces, lab dir), also after a crash",
  builder: (yargs) => defineLabOptions(yargs),
  handler: async (args) => {
    const report = await teardownLab({ name: args.name, labDir: labDirOf(args) });
    if (report.namespaces.length === 0 && !report.labDirRemoved) {
      process.stdout.write(`lab "${args.name}": nothing to remove\n`);
      return;
    }
    process.stdout.write(
      `lab "${args.name}" removed: ${report.namespaces.length} namespaces${report.pids.length ? `, processes ${report.pids.join(", ")}` : ""}` +
        `${report.labDirRemoved ? `, ${labDirOf(args)}` : ""}\n`,
    );
  },
};

export const labCommand: CommandModule<object, object> = {
  command: "lab <command>",
  describe: "a whole weft cluster on one machine, in network namespaces",
  builder: (yargs) =>
    yargs
      .command(upCommand)
      .command(statusCommand)
      .command(execCommand)
      .command(checkCommand)
      .command(downCommand)
      .demandCommand(1, "name a lab command: up, status, exec, check or down"),
  handler: () => undefined,
};
