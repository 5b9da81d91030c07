import { formatIpv4 } from "../net/ipv4.js";
import { formatIpv6 } from "../net/ipv6.js";
import type { NetworkConfig } from "../config/network-config.js";

/**
 * The Network (or, dual-stack, the IPv6Network) has no free subnet left in its range. Not retried
 * by acquire; `family` says which range ran out.
 */
export class OutOfSubnetsError extends Error {
  constructor(
    config: NetworkConfig,
    leased: number,
    readonly family: "ipv4" | "ipv6" = "ipv4",
  ) {
    super(outOfSubnetsMessage(config, leased, family));
    this.name = "OutOfSubnetsError";
  }
}

function outOfSubnetsMessage(config: NetworkConfig, leased: number, family: "ipv4" | "ipv6"): string {
  const { ipv4, ipv6 } = config;
  const advice = 'free one with "weft leases" + etcdctl, or widen the range';
  if (family === "ipv4" && ipv4) {
    return (
      `out of subnets: all /${ipv4.subnetLen} subnets of Network ${ipv4.network} between ` +
      `SubnetMin ${formatIpv4(ipv4.subnetMin)} and SubnetMax ${formatIpv4(ipv4.subnetMax)} are leased (${leased} leases); ${advice}`
    );
  }
  if (ipv6) {
    return (
      `out of IPv6 subnets: all /${ipv6.subnetLen} subnets of IPv6Network ${ipv6.network} between ` +
      `IPv6SubnetMin ${formatIpv6(ipv6.subnetMin)} and IPv6SubnetMax ${formatIpv6(ipv6.subnetMax)} are leased ` +
      `(${leased} leases with an IPv6 subnet); ${advice}`
    );
  }
  return `out of ${family === "ipv4" ? "IPv4" : "IPv6"} subnets: the network config has no ${family === "ipv4" ? "Network" : "IPv6Network"} to lease from`;
}

/**
 * A live lease carries our PublicIP and nothing proves it is ours (see acquire's isOurs): most
 * likely two hosts were started with the same --public-ip. Refused rather than shared; retried.
 */
export class PublicIPInUseError extends Error {
  constructor(
    readonly key: string,
    readonly publicIP: string,
    readonly etcdLeaseId: string | undefined,
    /** --public-ipv6 when the host is known by its PublicIPv6 (an IPv6-only network). */
    flag: "--public-ip" | "--public-ipv6" = "--public-ip",
  ) {
    const field = flag === "--public-ip" ? "PublicIP" : "PublicIPv6";
    super(
      `${field} ${publicIP} is already leased by ${key} (etcd lease ${etcdLeaseId ?? "none"}), and nothing shows it is this host's ` +
        `(not the subnet in the subnet file, not the etcd lease in --state-dir, not our VtepMAC): another host runs with ` +
        `${flag} ${publicIP}? Give each host its own ${flag}; if ${key} really is this host's from before its state was lost, ` +
        `delete it ("etcdctl del ${key}") and weft takes a lease on its next try`,
    );
    this.name = "PublicIPInUseError";
  }
}

/**
 * This host's subnet (from its lease or subnet file) lies outside the configured Network, and
 * other hosts' leases outside it still live: the Network was changed while this host was down and
 * the others still run in the old one. Moving would cut this host off from them (and docker0 keeps
 * the old subnet); so it is refused, and retried until the config is back or the old leases are gone.
 */
export class NetworkChangedError extends Error {
  constructor(
    readonly ownSubnet: string,
    readonly problem: string,
    readonly oldLeases: readonly string[],
  ) {
    const shown = oldLeases.slice(0, 5).join(", ") + (oldLeases.length > 5 ? ` and ${oldLeases.length - 5} more` : "");
    super(
      `the network config changed while this host was down: our subnet ${ownSubnet} (${problem}), and ${oldLeases.length} lease(s) of other hosts ` +
        `outside it still live (${shown}): refusing to move into the new Network while hosts run in the old one (they could not reach us, nor we them). ` +
        `Restore the old config, or stop every host and delete the old leases, then start them again`,
    );
    this.name = "NetworkChangedError";
  }
}
