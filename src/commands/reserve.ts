import type { Argv, CommandModule } from "yargs";
import { parseNetworkConfig, type NetworkConfig } from "../config/network-config.js";
import { formatLeaseValue } from "../lease/lease-value.js";
import { decodeLease } from "../lease/stored-lease.js";
import { fitsConfig, fitsIpv6Config } from "../lease/subnet-space.js";
import { describeSubnets, parseSubnetKey, subnetKey, subnetsClaimedByKey, type SubnetKeyParts } from "../lease/subnet-key.js";
import { Ipv4Subnet, parseIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, parseIpv6 } from "../net/ipv6.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineStoreOptions, lastString, withStore, type StoreArgs } from "./store-flags.js";

/**
 * `weft reserve` / `weft unreserve`: a reservation is a subnet key with no etcd lease (no TTL),
 * matched by PublicIP when that host starts (flannel-compat §1.6). In a dual-stack network the
 * reservation is the dual-stack key (10.66.52.0-24&fd66:0:0:6::-64), as the owner's lease is.
 */
interface ReserveArgs extends StoreArgs {
  subnet: string;
  "public-ip": string;
  "ipv6-subnet"?: string;
  "public-ipv6"?: string;
  force: boolean;
}

interface UnreserveArgs extends StoreArgs {
  subnet: string;
}

export const reserveCommand: CommandModule<object, ReserveArgs> = {
  command: "reserve <subnet> <public-ip>",
  describe: "reserve a subnet (dual stack: with --ipv6-subnet) for the host with this public IP (a lease that never expires)",
  builder: (yargs) =>
    (defineStoreOptions(yargs as Argv)
      .positional("subnet", { type: "string", demandOption: true, describe: "e.g. 10.66.36.0/24" })
      .positional("public-ip", { type: "string", demandOption: true, describe: "the host's PublicIP" })
      .option("ipv6-subnet", { coerce: lastString, type: "string", describe: "dual-stack networks: the IPv6 subnet, e.g. fd66:0:0:6::/64" })
      .option("public-ipv6", { coerce: lastString, type: "string", describe: "dual-stack networks: the host's PublicIPv6 (its daemon writes it anyway when it starts)" })
      .option("force", { type: "boolean", default: false, describe: "take the subnet even if another host holds it" })) as unknown as Argv<ReserveArgs>,
  handler: async (args) => {
    const parts: SubnetKeyParts = { subnet: Ipv4Subnet.parse(args.subnet, "subnet") };
    if (args["ipv6-subnet"] !== undefined) parts.ipv6Subnet = Ipv6Subnet.parse(args["ipv6-subnet"], "--ipv6-subnet");
    const publicIP = args["public-ip"];
    parseIpv4(publicIP, "public-ip");
    const publicIPv6 = args["public-ipv6"] === undefined ? null : formatIpv6(parseIpv6(args["public-ipv6"], "--public-ipv6"));
    await withStore(args, async (store) => {
      const configValue = await store.get(store.configKey);
      if (configValue) checkFits(parts, parseNetworkConfig(configValue.value));
      const key = subnetKey(store.subnetsPrefix, parts.subnet, parts.ipv6Subnet);
      await refuseOverlaps(store, key, parts);
      const existing = await store.get(key);
      let value = formatLeaseValue({ publicIP, publicIPv6 });
      if (existing) {
        const lease = decodeLease(existing);
        if (lease.attrs.publicIP !== publicIP && !args.force) {
          throw new Error(`${key} is held by ${lease.attrs.publicIP}; pass --force to give it to ${publicIP}`);
        }
        // Keeping the holder's backend data means its peers see no change; only the TTL goes.
        if (lease.attrs.publicIP === publicIP) value = existing.value;
      }
      await store.put(key, value);
      process.stdout.write(`reserved ${key} for ${publicIP}${publicIPv6 ? ` (${publicIPv6})` : ""} (no TTL)\n`);
    });
  },
};

/** The reservation must be a key the owner's daemon keeps: both families as the config leases them. */
function checkFits(parts: SubnetKeyParts, config: NetworkConfig): void {
  if (!fitsConfig(parts.subnet, config)) {
    throw new Error(`subnet: ${parts.subnet} is not a /${config.subnetLen} subnet inside Network ${config.network} between SubnetMin and SubnetMax`);
  }
  const ipv6 = config.ipv6;
  if (!ipv6 && parts.ipv6Subnet) throw new Error(`--ipv6-subnet: the network config does not enable IPv6 (EnableIPv6), so a lease has no IPv6 subnet`);
  if (ipv6 && !parts.ipv6Subnet) {
    throw new Error(`--ipv6-subnet: missing; the network is dual-stack (EnableIPv6), so a reservation needs a /${ipv6.subnetLen} of IPv6Network ${ipv6.network} too`);
  }
  if (ipv6 && !fitsIpv6Config(parts.ipv6Subnet, config)) {
    throw new Error(`--ipv6-subnet: ${parts.ipv6Subnet} is not a /${ipv6.subnetLen} subnet inside IPv6Network ${ipv6.network} between IPv6SubnetMin and IPv6SubnetMax`);
  }
}

/** Another key naming one of these subnets (e.g. the same IPv4 subnet with another IPv6 one) would make two hosts share it. */
async function refuseOverlaps(store: EtcdStore, key: string, parts: SubnetKeyParts): Promise<void> {
  const listing = await store.list(store.subnetsPrefix);
  for (const stored of listing.keys) {
    if (stored.key === key) continue;
    const claimed = subnetsClaimedByKey(stored.key);
    const v4 = claimed.subnet?.overlaps(parts.subnet) ?? false;
    const v6 = (parts.ipv6Subnet && claimed.ipv6Subnet?.overlaps(parts.ipv6Subnet)) ?? false;
    if (v4 || v6) {
      throw new Error(`${stored.key} already names ${v4 ? parts.subnet : parts.ipv6Subnet}: reserving ${describeSubnets(parts)} would share it; delete that key first ("etcdctl del ${stored.key}")`);
    }
  }
}

export const unreserveCommand: CommandModule<object, UnreserveArgs> = {
  command: "unreserve <subnet>",
  describe: "remove a reservation (a running owner leases the subnet again, with a TTL)",
  builder: (yargs) =>
    defineStoreOptions(yargs as Argv).positional("subnet", { type: "string", demandOption: true }) as unknown as Argv<UnreserveArgs>,
  handler: async (args) => {
    const subnet = Ipv4Subnet.parse(args.subnet, "subnet");
    await withStore(args, async (store) => {
      // Found by its IPv4 subnet, so a dual-stack reservation needs no IPv6 subnet typed in.
      const listing = await store.list(store.subnetsPrefix);
      const existing = listing.keys.find((stored) => parseSubnetKey(stored.key)?.subnet.equals(subnet));
      const key = existing?.key ?? subnetKey(store.subnetsPrefix, subnet);
      if (!existing) throw new Error(`${key} does not exist`);
      if (existing.leaseId !== "0") throw new Error(`${key} is a lease with a TTL, not a reservation; nothing to do`);
      if (!(await store.deleteIfUnchanged(key, existing.modRevision))) throw new Error(`${key} changed while unreserving; try again`);
      process.stdout.write(`removed the reservation ${key}\n`);
    });
  },
};
