import type { Argv, CommandModule } from "yargs";
import { parseNetworkConfig, type NetworkConfig } from "../config/network-config.js";
import { formatLeaseValue } from "../lease/lease-value.js";
import { decodeLease } from "../lease/stored-lease.js";
import { fitsConfig, fitsIpv6Config } from "../lease/subnet-space.js";
import { describeSubnets, parseSubnetKey, primarySubnet, subnetKey, subnetsClaimedByKey, type SubnetKeyParts } from "../lease/subnet-key.js";
import { NO_PUBLIC_IP, hostAddress } from "../lease/host-address.js";
import type { LeaseAttrs } from "../lease/types.js";
import { sameSubnet } from "../net/ip-subnet.js";
import { Ipv4Subnet, parseIpv4 } from "../net/ipv4.js";
import { Ipv6Subnet, formatIpv6, parseIpv6 } from "../net/ipv6.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineStoreOptions, lastString, withStore, type StoreArgs } from "./store-flags.js";

/**
 * `weft reserve` / `weft unreserve`: a reservation is a subnet key with no etcd lease (no TTL),
 * matched by PublicIP when that host starts (flannel-compat §1.6). In a dual-stack network the
 * reservation is the dual-stack key (10.66.52.0-24&fd66:0:0:6::-64), as the owner's lease is; in an
 * IPv6-only network `weft reserve fd66:0:0:6::/64 fd77::11` writes `0.0.0.0-0&fd66:0:0:6::-64` with
 * PublicIP 0.0.0.0 and the host's PublicIPv6, which is what its daemon matches there.
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
  describe: "reserve a subnet (dual stack: with --ipv6-subnet; IPv6 only: an IPv6 subnet and PublicIPv6) for the host with this public IP (a lease that never expires)",
  builder: (yargs) =>
    (defineStoreOptions(yargs as Argv)
      .positional("subnet", { type: "string", demandOption: true, describe: "e.g. 10.66.36.0/24; in an IPv6-only network the IPv6 subnet, e.g. fd66:0:0:6::/64" })
      .positional("public-ip", { type: "string", demandOption: true, describe: "the host's PublicIP (IPv6-only network: its PublicIPv6)" })
      .option("ipv6-subnet", { coerce: lastString, type: "string", describe: "dual-stack networks: the IPv6 subnet, e.g. fd66:0:0:6::/64" })
      .option("public-ipv6", { coerce: lastString, type: "string", describe: "dual-stack networks: the host's PublicIPv6 (its daemon writes it anyway when it starts)" })
      .option("force", { type: "boolean", default: false, describe: "take the subnet even if another host holds it" })) as unknown as Argv<ReserveArgs>,
  handler: async (args) => {
    const { parts, attrs } = parseReservation(args);
    const holder = hostAddress(attrs) ?? attrs.publicIP;
    await withStore(args, async (store) => {
      const configValue = await store.get(store.configKey);
      if (configValue) checkFits(parts, parseNetworkConfig(configValue.value));
      const key = subnetKey(store.subnetsPrefix, parts);
      await refuseOverlaps(store, key, parts);
      const existing = await store.get(key);
      let value = formatLeaseValue(attrs);
      if (existing) {
        const lease = decodeLease(existing);
        const held = hostAddress(lease.attrs);
        if (held !== holder && !args.force) {
          throw new Error(`${key} is held by ${held ?? lease.attrs.publicIP}; pass --force to give it to ${holder}`);
        }
        // Keeping the holder's backend data means its peers see no change; only the TTL goes.
        if (held === holder) value = existing.value;
        // Given to another host: deleted first, so its holder and every peer see the key go and
        // come anew (a value put over a live lease with another host's address is taken for an overwrite).
        else await store.delete(key);
      }
      await store.put(key, value);
      const v6Note = parts.subnet && attrs.publicIPv6 ? ` (${attrs.publicIPv6})` : "";
      process.stdout.write(`reserved ${key} for ${holder}${v6Note} (no TTL)\n`);
    });
  },
};

/**
 * The subnets and value of `weft reserve`: an IPv4 subnet (and --ipv6-subnet) for the host at
 * PublicIP, or an IPv6 subnet alone (an IPv6-only network) for the host at that PublicIPv6.
 */
function parseReservation(args: ReserveArgs): { parts: SubnetKeyParts; attrs: LeaseAttrs } {
  if (args.subnet.includes(":")) {
    const ipv6Subnet = Ipv6Subnet.parse(args.subnet, "subnet");
    if (args["ipv6-subnet"] !== undefined) throw new Error("--ipv6-subnet: the subnet is already IPv6 (an IPv6-only reservation); give one IPv6 subnet");
    if (args["public-ipv6"] !== undefined) throw new Error("--public-ipv6: an IPv6-only reservation takes the host's PublicIPv6 as <public-ip>");
    const publicIPv6 = formatIpv6(parseIpv6(args["public-ip"], "public-ip (the host's PublicIPv6 for an IPv6 subnet)"));
    return { parts: { ipv6Subnet }, attrs: { publicIP: NO_PUBLIC_IP, publicIPv6 } };
  }
  const subnet = Ipv4Subnet.parse(args.subnet, "subnet");
  const parts: SubnetKeyParts = args["ipv6-subnet"] === undefined ? { subnet } : { subnet, ipv6Subnet: Ipv6Subnet.parse(args["ipv6-subnet"], "--ipv6-subnet") };
  const publicIP = args["public-ip"];
  parseIpv4(publicIP, "public-ip");
  const publicIPv6 = args["public-ipv6"] === undefined ? null : formatIpv6(parseIpv6(args["public-ipv6"], "--public-ipv6"));
  return { parts, attrs: { publicIP, publicIPv6 } };
}

/** The reservation must be a key the owner's daemon keeps: both families as the config leases them. */
function checkFits(parts: SubnetKeyParts, config: NetworkConfig): void {
  const ipv4 = config.ipv4;
  if (!ipv4 && parts.subnet) {
    throw new Error(`subnet: ${parts.subnet} is IPv4, but the network is IPv6-only (EnableIPv4: false); reserve an IPv6 subnet for the host's PublicIPv6`);
  }
  if (ipv4 && !fitsConfig(parts.subnet, config)) {
    throw new Error(
      parts.subnet
        ? `subnet: ${parts.subnet} is not a /${ipv4.subnetLen} subnet inside Network ${ipv4.network} between SubnetMin and SubnetMax`
        : `subnet: ${parts.ipv6Subnet} is IPv6, but the network leases IPv4 (Network ${ipv4.network}); reserve its IPv4 subnet (and --ipv6-subnet)`,
    );
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
    const v4 = (parts.subnet && claimed.subnet?.overlaps(parts.subnet)) ?? false;
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
    // An IPv6 subnet names an IPv6-only reservation.
    const parts: SubnetKeyParts = args.subnet.includes(":") ? { ipv6Subnet: Ipv6Subnet.parse(args.subnet, "subnet") } : { subnet: Ipv4Subnet.parse(args.subnet, "subnet") };
    await withStore(args, async (store) => {
      // Found by its IPv4 subnet, so a dual-stack reservation needs no IPv6 subnet typed in.
      const listing = await store.list(store.subnetsPrefix);
      const existing = listing.keys.find((stored) => {
        const found = parseSubnetKey(stored.key);
        return found !== undefined && sameSubnet(primarySubnet(found), primarySubnet(parts));
      });
      const key = existing?.key ?? subnetKey(store.subnetsPrefix, parts);
      if (!existing) throw new Error(`${key} does not exist`);
      if (existing.leaseId !== "0") throw new Error(`${key} is a lease with a TTL, not a reservation; nothing to do`);
      if (!(await store.deleteIfUnchanged(key, existing.modRevision))) throw new Error(`${key} changed while unreserving; try again`);
      process.stdout.write(`removed the reservation ${key}\n`);
    });
  },
};
