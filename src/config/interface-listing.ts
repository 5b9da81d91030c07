import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import { CommandFailedError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/** One interface with the addresses weft may use, in flanneld's order of preference. */
export interface InterfaceInfo {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  /** Usable IPv4 addresses: not deprecated, not loopback; global ones first, then link-local (169.254/16). */
  addresses: string[];
  /**
   * Usable IPv6 addresses, RFC 5952 text: scope global (ULA fd00::/8 included, as Go's
   * IsGlobalUnicast), not deprecated, not failed DAD; permanent before dynamic (SLAAC),
   * non-temporary before temporary (privacy), as flanneld sorts them.
   */
  ipv6Addresses: string[];
  /** Link-local IPv6 addresses (fe80::/10): never selected, named in errors so the reader sees why. */
  ipv6LinkLocal: string[];
}

/** Every interface with its usable addresses, from `ip -j addr show`. */
export async function listInterfaces(netns?: string): Promise<InterfaceInfo[]> {
  const links = asArray(await ipJson(["addr", "show"], netns), "ip addr show");
  return links.map((link) => {
    const global: string[] = [];
    const linkLocal: string[] = [];
    const ipv6: { address: string; rank: number }[] = [];
    const ipv6LinkLocal: string[] = [];
    for (const info of Array.isArray(link.addr_info) ? link.addr_info : []) {
      if (!isRecord(info) || typeof info.local !== "string" || info.deprecated === true) continue;
      if (info.family === "inet") {
        const address = info.local;
        if (address.startsWith("127.") || address === "0.0.0.0") continue;
        (address.startsWith("169.254.") ? linkLocal : global).push(address);
      } else if (info.family === "inet6" && info.dadfailed !== true) {
        const value = tryParseIpv6(info.local);
        if (value === undefined) continue;
        const address = formatIpv6(value);
        if (info.scope === "link") ipv6LinkLocal.push(address);
        else if (info.scope === "global") ipv6.push({ address, rank: (info.dynamic === true ? 2 : 0) + (info.temporary === true ? 1 : 0) });
      }
    }
    const flags = Array.isArray(link.flags) ? link.flags : [];
    return {
      name: String(link.ifname),
      index: Number(link.ifindex),
      mtu: Number(link.mtu),
      up: flags.includes("UP"),
      // flanneld prefers a global address and uses a link-local one only when there is nothing else.
      addresses: [...global, ...linkLocal],
      // A stable sort: the kernel's order among equals.
      ipv6Addresses: ipv6.sort((a, b) => a.rank - b.rank).map((entry) => entry.address),
      ipv6LinkLocal,
    };
  });
}

/** "lo (no usable IPv4), eth0 (192.168.1.5), docker0 (down, 172.17.0.1)" for error messages; with `ipv6`, its addresses too. */
export function describeInterfaces(interfaces: InterfaceInfo[], { ipv6 = false }: { ipv6?: boolean } = {}): string {
  if (interfaces.length === 0) return "none";
  return interfaces
    .map((iface) => {
      const v4 = iface.addresses.length ? iface.addresses : ["no usable IPv4"];
      const v6 = !ipv6 ? [] : iface.ipv6Addresses.length ? iface.ipv6Addresses : [iface.ipv6LinkLocal.length ? "only link-local IPv6" : "no IPv6"];
      return `${iface.name} (${[...(iface.up ? [] : ["down"]), ...v4, ...v6].join(", ")})`;
    })
    .join(", ");
}

/** `ip -j <args>` (in `netns` when given), parsed; empty output is an empty list. */
export async function ipJson(args: string[], netns: string | undefined): Promise<unknown> {
  const fullArgs = [...(netns ? ["-n", netns] : []), "-j", ...args];
  let stdout: string;
  try {
    ({ stdout } = await runCommand("ip", fullArgs, { timeoutMs: 10_000 }));
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
    throw new Error(
      `interface selection: \`ip ${fullArgs.join(" ")}\` failed: ${commandFailureText(error)}` +
        ` (is iproute2 installed${netns ? ` and does netns ${netns} exist` : ""}?)`,
      { cause: error },
    );
  }
  // `ip route get` and empty listings print nothing or "[]".
  return stdout.trim() === "" ? [] : (JSON.parse(stdout) as unknown);
}

export function asArray(value: unknown, command: string): Record<string, unknown>[] {
  if (!Array.isArray(value)) throw new Error(`interface selection: \`${command}\` did not print a JSON array`);
  return value.filter(isRecord);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
