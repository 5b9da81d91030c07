import type { CommandModule } from "yargs";
import { isJsonObject, readField } from "../codec/json-fields.js";
import { formatDuration } from "../observe/format-duration.js";
import { formatTable } from "../observe/text-table.js";
import { decodeLease } from "../lease/stored-lease.js";
import type { Lease } from "../lease/types.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineStoreOptions, withStore, type StoreArgs } from "./store-flags.js";
import { errorMessage } from "../errors/error-message.js";
import { NO_PUBLIC_IP } from "../lease/host-address.js";

/** `weft leases`: the cluster's subnet leases as a table, or --json. */
interface LeasesArgs extends StoreArgs {
  json: boolean;
}

export interface LeaseRow {
  /** The IPv4 subnet; "-" for an IPv6-only lease (its key says 0.0.0.0-0). */
  subnet: string;
  /** The IPv6 subnet of a dual-stack or IPv6-only lease; null for an IPv4-only one. */
  ipv6Subnet: string | null;
  publicIP: string;
  publicIPv6: string | null;
  backendType: string;
  vtepMAC: string | null;
  /** Seconds until the key expires; null for a reservation. */
  expiresInSeconds: number | null;
  reservation: boolean;
  key: string;
  /** Set when the key or value could not be parsed. */
  error?: string;
}

export async function readLeaseRows(store: EtcdStore): Promise<LeaseRow[]> {
  const listing = await store.list(store.subnetsPrefix);
  const rows = await Promise.all(
    listing.keys.map(async (stored): Promise<LeaseRow> => {
      let lease: Lease;
      try {
        lease = decodeLease(stored);
      } catch (error) {
        return {
          subnet: "?",
          ipv6Subnet: null,
          publicIP: "?",
          publicIPv6: null,
          backendType: "?",
          vtepMAC: null,
          expiresInSeconds: null,
          reservation: false,
          key: stored.key,
          error: errorMessage(error),
        };
      }
      const ttl = lease.etcdLeaseId ? await store.timeToLive(lease.etcdLeaseId) : undefined;
      // An IPv6-only vxlan lease has BackendV6Data alone.
      const data = lease.attrs.backendData ?? lease.attrs.backendV6Data;
      const mac = isJsonObject(data) ? readField(data, "VtepMAC") : undefined;
      return {
        subnet: lease.subnet?.toString() ?? "-",
        ipv6Subnet: lease.ipv6Subnet?.toString() ?? null,
        publicIP: lease.attrs.publicIP,
        publicIPv6: lease.attrs.publicIPv6,
        backendType: lease.attrs.backendType ?? "udp",
        vtepMAC: typeof mac === "string" ? mac : null,
        expiresInSeconds: lease.reservation ? null : (ttl ?? 0),
        reservation: lease.reservation,
        key: lease.key,
      };
    }),
  );
  return rows.sort((a, b) => a.key.localeCompare(b.key, "en", { numeric: true }));
}

/** The IPv6 columns appear when any lease is dual-stack (or advertises an IPv6 address), so IPv4 clusters read as before. */
export function formatLeaseTable(rows: readonly LeaseRow[]): string {
  const ipv6 = rows.some((row) => row.ipv6Subnet !== null || row.publicIPv6 !== null);
  const header = ["SUBNET", ...(ipv6 ? ["IPV6 SUBNET"] : []), "PUBLIC IP", ...(ipv6 ? ["PUBLIC IPV6"] : []), "BACKEND", "VTEP MAC", "EXPIRES IN", "RESERVATION"];
  const lines = rows.map((row) =>
    row.error
      ? [row.key, "malformed", row.error, ...header.slice(3).map(() => "")]
      : [
          row.subnet,
          ...(ipv6 ? [row.ipv6Subnet ?? "-"] : []),
          // flanneld's zero PublicIP of an IPv6-only lease says nothing to a reader.
          row.subnet === "-" && row.publicIP === NO_PUBLIC_IP ? "-" : row.publicIP,
          ...(ipv6 ? [row.publicIPv6 ?? "-"] : []),
          row.backendType,
          row.vtepMAC ?? "-",
          row.expiresInSeconds === null ? "never" : formatDuration(row.expiresInSeconds * 1000),
          row.reservation ? "yes" : "no",
        ],
  );
  return `${formatTable([header, ...lines])}\n`;
}

export const leasesCommand: CommandModule<object, LeasesArgs> = {
  command: "leases",
  describe: "list the cluster's subnet leases",
  builder: (yargs) => defineStoreOptions(yargs).option("json", { type: "boolean", default: false, describe: "print JSON" }),
  handler: async (args) => {
    const rows = await withStore(args, readLeaseRows);
    process.stdout.write(args.json ? `${JSON.stringify(rows, null, 2)}\n` : formatLeaseTable(rows));
  },
};
