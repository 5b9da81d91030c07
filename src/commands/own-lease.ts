import type { Lease } from "../lease/types.js";
import type { Ipv4Subnet } from "../net/ipv4.js";

/**
 * This host's lease: the subnet file's subnet, if that lease advertises our PublicIP (a subnet
 * file copied from another host, or a lease since taken over, must not be mistaken for ours);
 * else the only lease advertising our PublicIP. Throws saying what was found.
 */
export function findOwnLease(leases: readonly Lease[], fromFile: Ipv4Subnet | undefined, publicIP: string, subnetFile: string): Lease {
  const fileLease = fromFile && leases.find((lease) => lease.subnet.equals(fromFile));
  if (fileLease && fileLease.attrs.publicIP === publicIP) return fileLease;
  const byPublicIP = leases.filter((lease) => lease.attrs.publicIP === publicIP);
  if (byPublicIP.length === 1) return byPublicIP[0] as Lease;
  const fileNote = !fromFile
    ? `the subnet file ${subnetFile} names no subnet`
    : fileLease
      ? `the subnet file ${subnetFile} names ${fromFile}, whose lease advertises PublicIP ${fileLease.attrs.publicIP}, not ${publicIP}`
      : `the subnet file ${subnetFile} names ${fromFile}, which has no lease`;
  if (byPublicIP.length > 1) {
    throw new Error(
      `cannot tell this host's lease: ${fileNote}, and ${byPublicIP.length} leases advertise PublicIP ${publicIP} ` +
        `(${byPublicIP.map((lease) => lease.subnet.toString()).join(", ")}); pass the daemon's --subnet-file`,
    );
  }
  throw new Error(
    `no lease in etcd belongs to this host: ${fileNote}, and no lease advertises PublicIP ${publicIP}; ` +
      "start `weft run` first, or pass the daemon's --subnet-file / --iface / --public-ip",
  );
}
