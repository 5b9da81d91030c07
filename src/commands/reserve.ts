import type { Argv, CommandModule } from "yargs";
import { parseNetworkConfig } from "../config/network-config.js";
import { formatLeaseValue } from "../lease/lease-value.js";
import { decodeLease } from "../lease/stored-lease.js";
import { fitsConfig } from "../lease/subnet-space.js";
import { subnetKey } from "../lease/subnet-key.js";
import { Ipv4Subnet, parseIpv4 } from "../net/ipv4.js";
import { defineStoreOptions, withStore, type StoreArgs } from "./store-flags.js";

/**
 * `weft reserve` / `weft unreserve`: a reservation is a subnet key with no etcd lease (no TTL),
 * matched by PublicIP when that host starts (flannel-compat §1.6).
 */
interface ReserveArgs extends StoreArgs {
  subnet: string;
  "public-ip": string;
  force: boolean;
}

interface UnreserveArgs extends StoreArgs {
  subnet: string;
}

export const reserveCommand: CommandModule<object, ReserveArgs> = {
  command: "reserve <subnet> <public-ip>",
  describe: "reserve a subnet for the host with this public IP (a lease that never expires)",
  builder: (yargs) =>
    (defineStoreOptions(yargs as Argv)
      .positional("subnet", { type: "string", demandOption: true, describe: "e.g. 10.66.36.0/24" })
      .positional("public-ip", { type: "string", demandOption: true, describe: "the host's PublicIP" })
      .option("force", { type: "boolean", default: false, describe: "take the subnet even if another host holds it" })) as unknown as Argv<ReserveArgs>,
  handler: async (args) => {
    const subnet = Ipv4Subnet.parse(args.subnet, "subnet");
    const publicIP = args["public-ip"];
    parseIpv4(publicIP, "public-ip");
    await withStore(args, async (store) => {
      const configValue = await store.get(store.configKey);
      if (configValue) {
        const config = parseNetworkConfig(configValue.value);
        if (!fitsConfig(subnet, config)) {
          throw new Error(`subnet: ${subnet} is not a /${config.subnetLen} subnet inside Network ${config.network} between SubnetMin and SubnetMax`);
        }
      }
      const key = subnetKey(store.subnetsPrefix, subnet);
      const existing = await store.get(key);
      let value = formatLeaseValue({ publicIP, publicIPv6: null });
      if (existing) {
        const lease = decodeLease(existing);
        if (lease.attrs.publicIP !== publicIP && !args.force) {
          throw new Error(`${key} is held by ${lease.attrs.publicIP}; pass --force to give it to ${publicIP}`);
        }
        // Keeping the holder's backend data means its peers see no change; only the TTL goes.
        if (lease.attrs.publicIP === publicIP) value = existing.value;
      }
      await store.put(key, value);
      process.stdout.write(`reserved ${key} for ${publicIP} (no TTL)\n`);
    });
  },
};

export const unreserveCommand: CommandModule<object, UnreserveArgs> = {
  command: "unreserve <subnet>",
  describe: "remove a reservation (a running owner leases the subnet again, with a TTL)",
  builder: (yargs) =>
    defineStoreOptions(yargs as Argv).positional("subnet", { type: "string", demandOption: true }) as unknown as Argv<UnreserveArgs>,
  handler: async (args) => {
    const subnet = Ipv4Subnet.parse(args.subnet, "subnet");
    await withStore(args, async (store) => {
      const key = subnetKey(store.subnetsPrefix, subnet);
      const existing = await store.get(key);
      if (!existing) throw new Error(`${key} does not exist`);
      if (existing.leaseId !== "0") throw new Error(`${key} is a lease with a TTL, not a reservation; nothing to do`);
      if (!(await store.deleteIfUnchanged(key, existing.modRevision))) throw new Error(`${key} changed while unreserving; try again`);
      process.stdout.write(`removed the reservation ${key}\n`);
    });
  },
};
