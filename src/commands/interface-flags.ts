import type { Argv } from "yargs";
import type { InterfaceSelectionOptions } from "../config/interface-selection.js";
import { ConfigurationError } from "../errors/configuration-error.js";
import { tryParseIpv4 } from "../net/ipv4.js";
import { defaultFromEnvironment, type Environment } from "./flag-environment.js";
import { lastString } from "./store-flags.js";

/**
 * The flags that choose the underlay interface and the advertised address, shared by `weft run`
 * and `weft doctor`: doctor must resolve them exactly as the daemon did, or it compares the
 * kernel with another host's idea of it.
 */
export interface InterfaceArgs {
  iface?: string | string[];
  "iface-regex"?: string | string[];
  "iface-can-reach"?: string;
  "public-ip"?: string;
}

export function defineInterfaceOptions<T>(yargs: Argv<T>, environment: Environment = process.env): Argv<T & InterfaceArgs> {
  const fromEnv = (flag: string) => defaultFromEnvironment(flag, undefined, environment);
  return yargs
    .option("iface", { type: "string", ...fromEnv("iface"), describe: "interface name or IPv4 to use for the underlay; repeatable, first match wins" })
    .option("iface-regex", { type: "string", ...fromEnv("iface-regex"), describe: "regex on interface IPv4 addresses, then names; repeatable" })
    .option("iface-can-reach", { coerce: lastString, type: "string", ...fromEnv("iface-can-reach"), describe: "use the interface the kernel would use to reach this IPv4" })
    .option("public-ip", { coerce: lastString, type: "string", ...fromEnv("public-ip"), describe: "IPv4 advertised to peers (default: the interface address)" });
}

/**
 * A repeatable flag's values in order. flanneld splits each value on commas, which is also the
 * only way to give several in one FLANNELD_IFACE / FLANNELD_IFACE_REGEX variable.
 */
export function repeatableValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value])
    .flatMap((item) => String(item).split(","))
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Checked selection options; errors name the flag. */
export function interfaceSelectionFromArgs(args: InterfaceArgs): InterfaceSelectionOptions {
  const publicIP = args["public-ip"];
  if (publicIP !== undefined && tryParseIpv4(publicIP) === undefined) throw new ConfigurationError(`--public-ip: "${publicIP}" is not an IPv4 address`);
  const canReach = args["iface-can-reach"];
  if (canReach !== undefined && tryParseIpv4(canReach) === undefined) {
    throw new ConfigurationError(`--iface-can-reach: "${canReach}" is not an IPv4 address`);
  }
  return {
    ifaces: repeatableValues(args.iface),
    ifaceRegexes: repeatableValues(args["iface-regex"]),
    ifaceCanReach: canReach,
    publicIP,
  };
}
