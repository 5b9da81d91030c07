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
    const ipv6 = config.ipv6;
    super(
      family === "ipv6" && ipv6
        ? `out of IPv6 subnets: all /${ipv6.subnetLen} subnets of IPv6Network ${ipv6.network} between ` +
            `IPv6SubnetMin ${formatIpv6(ipv6.subnetMin)} and IPv6SubnetMax ${formatIpv6(ipv6.subnetMax)} are leased ` +
            `(${leased} leases with an IPv6 subnet); free one with "weft leases" + etcdctl, or widen the range`
        : `out of subnets: all /${config.subnetLen} subnets of Network ${config.network} between ` +
            `SubnetMin ${formatIpv4(config.subnetMin)} and SubnetMax ${formatIpv4(config.subnetMax)} are leased ` +
            `(${leased} leases); free one with "weft leases" + etcdctl, or widen the range`,
    );
    this.name = "OutOfSubnetsError";
  }
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
  ) {
    super(
      `PublicIP ${publicIP} is already leased by ${key} (etcd lease ${etcdLeaseId ?? "none"}), and nothing shows it is this host's ` +
        `(not the subnet in the subnet file, not the etcd lease in --state-dir, not our VtepMAC): another host runs with ` +
        `--public-ip ${publicIP}? Give each host its own --public-ip; if ${key} really is this host's from before its state was lost, ` +
        `delete it ("etcdctl del ${key}") and weft takes a lease on its next try`,
    );
    this.name = "PublicIPInUseError";
  }
}
