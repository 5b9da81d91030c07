import type { Argv, CommandModule } from "yargs";
import { DOCKER_OPTS_DEFAULTS, writeDockerOpts, type DockerOptsOptions } from "../host/docker-opts.js";
import { errorMessage } from "../errors/error-message.js";

/**
 * `weft docker-opts`: flannel's mk-docker-opts.sh, same flags, same output (flannel-compat §3.2).
 * The flags are parsed as POSIX getopts("f:d:icmk:") does, not by yargs: units written for the
 * script use forms yargs reads differently (`-kDOCKER_NETWORK_OPTIONS`, `-dfile`, `-k -x`).
 */
interface DockerOptsArgs {
  flags?: string[];
}

const USAGE = `weft docker-opts [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k COMBINED-KEY]

Generate Docker daemon options based on flannel env file
OPTIONS:
\t-f\tPath to flannel env file. Defaults to ${DOCKER_OPTS_DEFAULTS.flannelEnvFile}
\t-d\tPath to Docker env file to write to. Defaults to ${DOCKER_OPTS_DEFAULTS.dockerEnvFile}
\t-i\tOutput each Docker option as individual var. e.g. DOCKER_OPT_MTU=1500
\t-c\tOutput combined Docker options into DOCKER_OPTS var
\t-k\tSet the combined options key to this value (default DOCKER_OPTS=)
\t-m\tDo not output --ip-masq (useful for older Docker version)
Long forms: --flannel-env, --docker-env, --individual, --combined, --key, --omit-ip-masq.
weft's own: --daemon-json writes the settings as dockerd's daemon.json (bip, fixed-cidr-v6, ip-masq, ipv6, mtu).
A dual-stack subnet file (FLANNEL_IPV6_SUBNET) adds --ipv6 and --fixed-cidr-v6=<own IPv6 subnet>;
an IPv6-only one gives no --bip (Docker keeps its host-local IPv4 bridge). ip6tables is Docker's
choice: 20.10-26 leave it alone unless given --ip6tables --experimental; 27+ use it by default, and
then drop forwarded IPv6 as IPv4, which weft's --iptables-forward-rules let through.
`;

export class DockerOptsUsageError extends Error {}

// Maps, not object literals: "--constructor" must not find Object.prototype.constructor.
type ValueField = "flannelEnvFile" | "dockerEnvFile" | "combinedKey";
type SwitchField = "individual" | "combined" | "omitIpMasq" | "daemonJson";
const SHORT_WITH_VALUE = new Map<string, ValueField>([["f", "flannelEnvFile"], ["d", "dockerEnvFile"], ["k", "combinedKey"]]);
const SHORT_SWITCHES = new Map<string, SwitchField>([["i", "individual"], ["c", "combined"], ["m", "omitIpMasq"]]);
const LONG_WITH_VALUE = new Map<string, ValueField>([["flannel-env", "flannelEnvFile"], ["docker-env", "dockerEnvFile"], ["key", "combinedKey"]]);
const LONG_SWITCHES = new Map<string, SwitchField>([["individual", "individual"], ["combined", "combined"], ["omit-ip-masq", "omitIpMasq"], ["daemon-json", "daemonJson"]]);

/** getopts("f:d:icmk:") plus long forms; stops at "--" or the first operand, which it returns. */
export function parseDockerOptsFlags(tokens: readonly string[]): { options: DockerOptsOptions; operands: string[] } {
  const options: DockerOptsOptions = { ...DOCKER_OPTS_DEFAULTS };
  let index = 0;
  while (index < tokens.length) {
    const token = tokens[index] as string;
    if (token === "--") {
      index++;
      break;
    }
    if (!token.startsWith("-") || token === "-") break;
    index++;
    if (token.startsWith("--")) {
      const equals = token.indexOf("=");
      const name = token.slice(2, equals < 0 ? undefined : equals);
      const valueField = LONG_WITH_VALUE.get(name);
      const switchField = LONG_SWITCHES.get(name);
      if (valueField) {
        const value = equals >= 0 ? token.slice(equals + 1) : tokens[index++];
        if (value === undefined) throw new DockerOptsUsageError(`option requires an argument -- ${name}`);
        options[valueField] = value;
      } else if (switchField && equals < 0) {
        options[switchField] = true;
      } else {
        throw new DockerOptsUsageError(`illegal option ${token}`);
      }
      continue;
    }
    // A cluster of single letters; a letter that takes a value consumes the rest of the token or the next one.
    for (let position = 1; position < token.length; position++) {
      const letter = token[position] as string;
      const valueField = SHORT_WITH_VALUE.get(letter);
      const switchField = SHORT_SWITCHES.get(letter);
      if (valueField) {
        const rest = token.slice(position + 1);
        const value = rest !== "" ? rest : tokens[index++];
        if (value === undefined) throw new DockerOptsUsageError(`option requires an argument -- ${letter}`);
        options[valueField] = value;
        break;
      }
      if (switchField) {
        options[switchField] = true;
        continue;
      }
      throw new DockerOptsUsageError(letter === "h" || letter === "?" ? "" : `illegal option -- ${letter}`);
    }
  }
  return { options, operands: tokens.slice(index) };
}

export const dockerOptsCommand: CommandModule<object, DockerOptsArgs> = {
  command: "docker-opts [flags..]",
  describe: "write Docker daemon options (--bip, --mtu, --ip-masq) from the subnet file, as mk-docker-opts.sh",
  builder: (yargs) =>
    // Hand every flag to parseDockerOptsFlags untouched; only --help stays with yargs.
    (yargs as Argv)
      .parserConfiguration({ "unknown-options-as-args": true })
      .usage(USAGE)
      .positional("flags", { type: "string", array: true, describe: "the mk-docker-opts.sh flags above" }) as unknown as Argv<DockerOptsArgs>,
  handler: async (args) => {
    let parsed: ReturnType<typeof parseDockerOptsFlags>;
    try {
      parsed = parseDockerOptsFlags((args.flags ?? []).map(String));
    } catch (error) {
      if (!(error instanceof DockerOptsUsageError)) throw error;
      // Like the script: the problem, then the usage, on stderr, exit status 1.
      process.stderr.write(`${error.message ? `weft docker-opts: ${error.message}\n` : ""}${USAGE}`);
      process.exitCode = 1;
      return;
    }
    const { options, operands } = parsed;
    if (operands.length > 0) {
      process.stderr.write(`weft docker-opts: warning: ignoring ${operands.map((operand) => JSON.stringify(operand)).join(" ")} (not an option)\n`);
    }
    let result: Awaited<ReturnType<typeof writeDockerOpts>>;
    try {
      result = await writeDockerOpts(options, process.env);
    } catch (error) {
      // Reported here so the message is not buried under yargs' usage text.
      process.stderr.write(`weft docker-opts: ${errorMessage(error)}\n`);
      process.exitCode = 1;
      return;
    }
    if (result.missingSubnet) {
      process.stderr.write(
        `weft docker-opts: warning: no FLANNEL_SUBNET in ${options.flannelEnvFile}${result.fileFound ? "" : " (file not found)"} ` +
          `or the environment, so ${options.dockerEnvFile} has no --bip; start weft first (weft run writes the subnet file)\n`,
      );
    }
    if (result.conflicts.length > 0) {
      // mk-docker-opts.sh's exact message and exit status; the file is already written, as there.
      process.stderr.write(`Your routing table already contains the subnet: ${result.conflicts.join("\n")}\n`);
      process.exitCode = 1;
    }
  },
};
