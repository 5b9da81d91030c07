import { formatIpv4 } from "../net/ipv4.js";
import type { NetworkConfig } from "../config/network-config.js";

/** The Network has no free subnet left in [SubnetMin, SubnetMax]. Not retried by acquire. */
export class OutOfSubnetsError extends Error {
  constructor(config: NetworkConfig, leased: number) {
    super(
      `out of subnets: all /${config.subnetLen} subnets of Network ${config.network} between ` +
        `SubnetMin ${formatIpv4(config.subnetMin)} and SubnetMax ${formatIpv4(config.subnetMax)} are leased ` +
        `(${leased} leases); free one with "weft leases" + etcdctl, or widen the range`,
    );
    this.name = "OutOfSubnetsError";
  }
}
