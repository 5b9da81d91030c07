import type { NetworkConfig } from "../config/network-config.js";
import { carriesAddress, hostAddress, ownHostAddress } from "../lease/host-address.js";
import { primarySubnet } from "../lease/subnet-key.js";
import type { Lease } from "../lease/types.js";
import { previousIpv6Subnet, previousSubnet, type SubnetEnv } from "../host/subnet-env.js";
import { sameSubnet, type IpSubnet } from "../net/ip-subnet.js";

/**
 * This host's lease: the subnet file's subnet, if that lease advertises our PublicIP (a subnet
 * file copied from another host, or a lease since taken over, must not be mistaken for ours);
 * else the only lease advertising our PublicIP. In an IPv6-only network the subnet is the
 * IPv6 one and the address our PublicIPv6 (every IPv6-only lease says PublicIP 0.0.0.0).
 * Throws saying what was found.
 */
export function findOwnLease(leases: readonly Lease[], fromFile: IpSubnet | undefined, publicIP: string, subnetFile: string): Lease {
  const field = publicIP.includes(":") ? "PublicIPv6" : "PublicIP";
  const fileLease = fromFile && leases.find((lease) => sameSubnet(primarySubnet(lease), fromFile));
  if (fileLease && carriesAddress(fileLease.attrs, publicIP)) return fileLease;
  const byPublicIP = leases.filter((lease) => carriesAddress(lease.attrs, publicIP));
  if (byPublicIP.length === 1) return byPublicIP[0] as Lease;
  const fileNote = !fromFile
    ? `the subnet file ${subnetFile} names no subnet`
    : fileLease
      ? `the subnet file ${subnetFile} names ${fromFile}, whose lease advertises ${field} ${hostAddress(fileLease.attrs) ?? "none"}, not ${publicIP}`
      : `the subnet file ${subnetFile} names ${fromFile}, which has no lease`;
  if (byPublicIP.length > 1) {
    throw new Error(
      `cannot tell this host's lease: ${fileNote}, and ${byPublicIP.length} leases advertise ${field} ${publicIP} ` +
        `(${byPublicIP.map((lease) => primarySubnet(lease).toString()).join(", ")}); pass the daemon's --subnet-file`,
    );
  }
  throw new Error(
    `no lease in etcd belongs to this host: ${fileNote}, and no lease advertises ${field} ${publicIP}; ` +
      `start \`weft run\` first, or pass the daemon's --subnet-file / --iface / ${field === "PublicIP" ? "--public-ip" : "--public-ipv6"}`,
  );
}

/** What the host is known by for findOwnLease: the subnet file's subnet and the address its leases carry. */
export function ownLeaseClues(
  config: NetworkConfig,
  env: SubnetEnv | undefined,
  external: { name: string; publicIP?: string; publicIPv6?: string },
): { fromFile: IpSubnet | undefined; address: string } {
  const fromFile = env && (config.ipv4 ? previousSubnet(env) : previousIpv6Subnet(env));
  const address = ownHostAddress(config.ipv4 !== undefined, external);
  if (address === undefined) throw new Error(`interface ${external.name} gives this host no address its leases carry (no ${config.ipv4 ? "IPv4" : "IPv6"} address)`);
  return { fromFile, address };
}
