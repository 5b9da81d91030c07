/**
 * flanneld reads every flag from FLANNELD_<FLAG> too. `weft run` takes them all (yargs'
 * .env("FLANNELD")); the other commands (leases, config, reserve, doctor) share only some flags,
 * and a host's /etc/default/weft sets run-only ones (FLANNELD_IP_MASQ, …) that yargs' strict
 * mode would reject as unknown arguments there. So those commands read the variable of each flag
 * they define, and nothing else.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

/** FLANNELD_ETCD_ENDPOINTS for "etcd-endpoints". */
export function environmentName(flag: string): string {
  return `FLANNELD_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * The yargs `default` of a flag: its FLANNELD_* variable when set (help shows the variable's
 * name, never its value: it may be a password), else the built-in default.
 */
export function defaultFromEnvironment(flag: string, builtIn: string, environment?: Environment): { default: string; defaultDescription?: string };
export function defaultFromEnvironment(flag: string, builtIn: undefined, environment?: Environment): { default?: string; defaultDescription?: string };
export function defaultFromEnvironment(flag: string, builtIn: string | undefined, environment: Environment = process.env): { default?: string; defaultDescription?: string } {
  const name = environmentName(flag);
  const value = environment[name];
  if (value !== undefined && value !== "") return { default: value, defaultDescription: `$${name}` };
  return builtIn === undefined ? {} : { default: builtIn };
}
