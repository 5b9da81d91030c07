import type { Argv } from "yargs";
import type { InterfaceSelectionOptions } from "../config/interface-selection.js";
import { ConfigurationError } from "../errors/configuration-error.js";
import { tryParseIpv4 } from "../net/ipv4.js";
import { tryParseIpv6 } from "../net/ipv6.js";
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
  "public-ipv6"?: string;
}

export function defineInterfaceOptions<T>(yargs: Argv<T>, environment: Environment = process.env): Argv<T & InterfaceArgs> {
  const fromEnv = (flag: string) => defaultFromEnvironment(flag, undefined, environment);
  return yargs
    .option("iface", { type: "string", ...fromEnv("iface"), describe: "interface name, IPv4 or IPv6 address to use for the underlay; repeatable, first match wins" })
    .option("iface-regex", { type: "string", ...fromEnv("iface-regex"), describe: "regex on interface addresses (dual stack: an IPv4 and an IPv6 one), then names; repeatable" })
    .option("iface-can-reach", { coerce: lastString, type: "string", ...fromEnv("iface-can-reach"), describe: "use the interface the kernel would use to reach this IPv4 or IPv6 address" })
    .option("public-ip", { coerce: lastString, type: "string", ...fromEnv("public-ip"), describe: "IPv4 advertised to peers (default: the interface address)" })
    .option("public-ipv6", { coerce: lastString, type: "string", ...fromEnv("public-ipv6"), describe: "IPv6 advertised to peers when the network is dual-stack (default: the interface's IPv6 address)" });
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
  const publicIPv6 = args["public-ipv6"] || undefined;
  if (publicIPv6 !== undefined && (tryParseIpv6(publicIPv6) === undefined || tryParseIpv4(publicIPv6) !== undefined)) {
    throw new ConfigurationError(`--public-ipv6: "${publicIPv6}" is not an IPv6 address (expected e.g. fd00::5)`);
  }
  const canReach = args["iface-can-reach"];
  if (canReach !== undefined && tryParseIpv4(canReach) === undefined && tryParseIpv6(canReach) === undefined) {
    throw new ConfigurationError(`--iface-can-reach: "${canReach}" is not an IPv4 or IPv6 address`);
  }
  return {
    ifaces: repeatableValues(args.iface),
    ifaceRegexes: repeatableValues(args["iface-regex"]),
    ifaceCanReach: canReach,
    publicIP,
    publicIPv6,
  };
}
