import { formatIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet } from "../net/ipv6.js";
import { writeFileAtomic } from "./atomic-file.js";
import { parseSubnetEnv, previousIpv6Subnet, previousSubnet, readSubnetEnv, type SubnetEnv } from "./subnet-env.js";
import { CommandFailedError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/**
 * What flannel's dist/mk-docker-opts.sh does (flannel-compat §3.2), byte for byte, so units that run it
 * as ExecStartPre can run `weft docker-opts` instead:
 *   1. read FLANNEL_* from the environment, then from the subnet file (the file wins, as `. file`);
 *   2. DOCKER_OPT_BIP=--bip=$FLANNEL_SUBNET, DOCKER_OPT_IPMASQ=--ip-masq=<inverted>, DOCKER_OPT_MTU=--mtu=$FLANNEL_MTU,
 *      (weft's addition, for a dual-stack subnet file) DOCKER_OPT_IPV6=--ipv6 and
 *      DOCKER_OPT_FIXED_CIDR_V6=--fixed-cidr-v6=<own IPv6 subnet>,
 *      plus any DOCKER_OPT_* already in the environment, in name order (the script's `set | grep`);
 *   3. write NAME="value" lines (-i) and KEY="$KEY <opt> <opt>..." (-c), both when neither is given;
 *   4. refuse (exit 1, after writing) when the main routing table routes the own subnet `via` a gateway.
 * An IPv6-only subnet file (no FLANNEL_SUBNET) gives no --bip, as the script: Docker keeps its own
 * default IPv4 bridge (172.17.0.1/16, host-local), containers get their overlay address from
 * --fixed-cidr-v6. --ip-masq is still inverted from FLANNEL_IPMASQ, so with FLANNEL_IPMASQ=true Docker
 * does not masquerade (neither its IPv6 containers' traffic into the overlay, which weft's ip6 rules
 * handle, nor its local IPv4 bridge's): give -m, or set ip-masq yourself, if containers need IPv4 NAT.
 */
export interface DockerOptsOptions {
  /** -f: the subnet file to read. */
  flannelEnvFile: string;
  /** -d: the file to write. */
  dockerEnvFile: string;
  /** -i: one DOCKER_OPT_* variable per option. */
  individual: boolean;
  /** -c: one combined variable. */
  combined: boolean;
  /** -k: name of the combined variable. */
  combinedKey: string;
  /** -m: leave out --ip-masq (Docker versions without the flag). */
  omitIpMasq: boolean;
  /** --daemon-json (weft's): write the same settings as a dockerd daemon.json instead of shell variables. */
  daemonJson: boolean;
}

export const DOCKER_OPTS_DEFAULTS: DockerOptsOptions = {
  flannelEnvFile: "/run/flannel/subnet.env",
  dockerEnvFile: "/run/docker_opts.env",
  individual: false,
  combined: false,
  combinedKey: "DOCKER_OPTS",
  omitIpMasq: false,
  daemonJson: false,
};

export type Environment = Readonly<Record<string, string | undefined>>;

const OPTION_PREFIX = "DOCKER_OPT_";
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The DOCKER_OPT_* variables for this subnet file; ip-masq is inverted (flannel masquerades, so Docker must not). */
export function dockerOptions(env: SubnetEnv, omitIpMasq: boolean): Map<string, string> {
  const options = new Map<string, string>();
  if (env.subnetAddress) {
    options.set("DOCKER_OPT_BIP", `--bip=${formatIpv4(env.subnetAddress.address)}/${env.subnetAddress.prefixLength}`);
  }
  if (env.mtu !== undefined) options.set("DOCKER_OPT_MTU", `--mtu=${env.mtu}`);
  // weft's addition (mk-docker-opts.sh knows no IPv6): docker0 gets the own IPv6 subnet, as --bip the IPv4 one.
  const ipv6Subnet = previousIpv6Subnet(env);
  if (ipv6Subnet) {
    options.set("DOCKER_OPT_IPV6", "--ipv6");
    options.set("DOCKER_OPT_FIXED_CIDR_V6", `--fixed-cidr-v6=${ipv6Subnet.toString()}`);
  }
  if (env.ipMasq !== undefined && !omitIpMasq) options.set("DOCKER_OPT_IPMASQ", `--ip-masq=${env.ipMasq ? "false" : "true"}`);
  return options;
}

/**
 * The same settings as dockerd's daemon.json keys (bip, fixed-cidr-v6, ip-masq, ipv6, mtu), for a
 * unit that writes /etc/docker/daemon.json (or passes --config-file) rather than DOCKER_OPTS.
 */
export function dockerDaemonJson(env: SubnetEnv, omitIpMasq: boolean): Record<string, string | number | boolean> {
  const settings: Record<string, string | number | boolean> = {};
  if (env.subnetAddress) settings.bip = `${formatIpv4(env.subnetAddress.address)}/${env.subnetAddress.prefixLength}`;
  const ipv6Subnet = previousIpv6Subnet(env);
  if (ipv6Subnet) settings["fixed-cidr-v6"] = ipv6Subnet.toString();
  if (env.ipMasq !== undefined && !omitIpMasq) settings["ip-masq"] = !env.ipMasq;
  if (ipv6Subnet) settings.ipv6 = true;
  if (env.mtu !== undefined) settings.mtu = env.mtu;
  return settings;
}

/**
 * The docker options file text. `options` are all DOCKER_OPT_* variables (computed and inherited);
 * `existingCombined` is what the combined variable already holds in the environment.
 */
export function formatDockerOpts(
  options: ReadonlyMap<string, string>,
  settings: Pick<DockerOptsOptions, "individual" | "combined" | "combinedKey">,
  existingCombined = "",
): string {
  const both = !settings.individual && !settings.combined;
  const names = [...options.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let text = "";
  // The script's quirks, kept because units may depend on them: the inherited value gets one
  // trailing space, then every option is appended after a space, hence the leading space.
  let combinedValue = existingCombined === "" ? "" : `${existingCombined} `;
  for (const name of names) {
    const value = options.get(name) as string;
    if (settings.individual || both) text += `${name}="${value}"\n`;
    combinedValue += ` ${value}`;
  }
  if (settings.combined || both) text += `${settings.combinedKey}="${combinedValue}"\n`;
  return text;
}

/** The subnet file's values, falling back to FLANNEL_* in the environment as a sourced file would. */
export async function readFlannelValues(path: string, environment: Environment): Promise<{ env: SubnetEnv; fileFound: boolean }> {
  const fromEnvironment: SubnetEnv = {};
  for (const key of ["FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_IPV6_NETWORK", "FLANNEL_IPV6_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"]) {
    const value = environment[key];
    // An empty variable is "unset" to the script's `[ -n ... ]` tests.
    if (value) Object.assign(fromEnvironment, parseSubnetEnv(`${key}=${value}`, `environment variable ${key}`));
  }
  const fromFile = await readSubnetEnv(path);
  // parseSubnetEnv sets only the keys it found, so a spread lets the file win key by key.
  const env: SubnetEnv = { ...fromEnvironment, ...fromFile };
  return { env, fileFound: fromFile !== undefined };
}

/**
 * Main-table routes that send the own subnet via a gateway: docker0 could not own it then. The
 * script checks FLANNEL_SUBNET; weft also checks FLANNEL_IPV6_SUBNET (`ip -6 route`), the only
 * subnet of an IPv6-only network.
 */
export async function conflictingRoutes(env: SubnetEnv, netns?: string): Promise<string[]> {
  const subnets = [previousSubnet(env), previousIpv6Subnet(env)];
  const conflicts: string[] = [];
  for (const subnet of subnets) {
    if (!subnet) continue;
    const family = subnet instanceof Ipv6Subnet ? ["-6"] : [];
    const args = [...(netns ? ["-n", netns] : []), ...family, "route", "show"];
    let stdout: string;
    try {
      ({ stdout } = await runCommand("ip", args, { timeoutMs: 10_000 }));
    } catch (error) {
      if (!(error instanceof CommandFailedError)) throw error;
      throw new Error(`docker-opts: \`ip ${args.join(" ")}\` failed: ${commandFailureText(error)}`, { cause: error });
    }
    const destination = subnet.toString();
    conflicts.push(
      ...stdout
        .split("\n")
        .filter((line) => line.split(" ")[0] === destination && / via /.test(line))
        .map((line) => line.trimEnd()),
    );
  }
  return conflicts;
}

export interface DockerOptsResult {
  /** The text written to dockerEnvFile. */
  text: string;
  /** Routes that make the result unusable; non-empty means exit 1. */
  conflicts: string[];
  /** Neither the subnet file nor the environment had FLANNEL_SUBNET (nor, IPv6-only, FLANNEL_IPV6_SUBNET): docker gets no subnet. */
  missingSubnet: boolean;
  fileFound: boolean;
}

/** Reads, writes the docker options file (atomically), then checks the routing table, as the script. */
export async function writeDockerOpts(options: DockerOptsOptions, environment: Environment, netns?: string): Promise<DockerOptsResult> {
  if (!SHELL_NAME.test(options.combinedKey)) {
    throw new Error(`-k: "${options.combinedKey}" is not a shell variable name (letters, digits, _; e.g. DOCKER_NETWORK_OPTIONS)`);
  }
  const { env, fileFound } = await readFlannelValues(options.flannelEnvFile, environment);
  const all = new Map<string, string>();
  for (const [name, value] of Object.entries(environment)) {
    if (name.startsWith(OPTION_PREFIX) && SHELL_NAME.test(name) && value !== undefined) all.set(name, value);
  }
  for (const [name, value] of dockerOptions(env, options.omitIpMasq)) all.set(name, value);
  const text = options.daemonJson
    ? `${JSON.stringify(dockerDaemonJson(env, options.omitIpMasq), null, 2)}\n`
    : formatDockerOpts(all, options, environment[options.combinedKey] ?? "");
  await writeFileAtomic(options.dockerEnvFile, text, "docker options file");
  return { text, conflicts: await conflictingRoutes(env, netns), missingSubnet: !env.subnetAddress && env.ipv6Subnet === undefined, fileFound };
}
