import type { CommandModule } from "yargs";
import { isJsonObject, readField } from "../codec/json-fields.js";
import { formatDuration } from "../observe/format-duration.js";
import { formatTable } from "../observe/text-table.js";
import { decodeLease } from "../lease/stored-lease.js";
import type { Lease } from "../lease/types.js";
import type { EtcdStore } from "../store/etcd-store.js";
import { defineStoreOptions, withStore, type StoreArgs } from "./store-flags.js";
import { errorMessage } from "../errors/error-message.js";

/** `weft leases`: the cluster's subnet leases as a table, or --json. */
interface LeasesArgs extends StoreArgs {
  json: boolean;
}

export interface LeaseRow {
  subnet: string;
  publicIP: string;
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
        return { subnet: "?", publicIP: "?", backendType: "?", vtepMAC: null, expiresInSeconds: null, reservation: false, key: stored.key, error: errorMessage(error) };
      }
      const ttl = lease.etcdLeaseId ? await store.timeToLive(lease.etcdLeaseId) : undefined;
      const data = lease.attrs.backendData;
      const mac = isJsonObject(data) ? readField(data, "VtepMAC") : undefined;
      return {
        subnet: lease.subnet.toString(),
        publicIP: lease.attrs.publicIP,
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

export function formatLeaseTable(rows: readonly LeaseRow[]): string {
  const header = ["SUBNET", "PUBLIC IP", "BACKEND", "VTEP MAC", "EXPIRES IN", "RESERVATION"];
  const lines = rows.map((row) =>
    row.error
      ? [row.key, "malformed", row.error, "", "", ""]
      : [
          row.subnet,
          row.publicIP,
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
