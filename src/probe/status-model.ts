import { hostname } from "node:os";
import type { Registry } from "prom-client";
import { errorMessage } from "../errors/error-message.js";
import type { Lease } from "../lease/types.js";
import type { Readiness } from "../observe/http-server.js";
import { statusCounters, type StatusModel } from "../observe/status-page.js";
import { VERSION } from "../version.js";
import type { PeerProbing } from "./peer-prober.js";
import { rttSummary } from "./probe-report.js";
import { formatVerdict } from "./verdict.js";
import { primarySubnet } from "../lease/subnet-key.js";
import { hostAddress } from "../lease/host-address.js";

/** What the daemon hands over for /status; the page's etcd line comes from a live call made for it. */
export interface StatusSources {
  backend: string | undefined;
  ownLease: Lease | undefined;
  peers: readonly Lease[];
  probing: PeerProbing | undefined;
  readiness: Readiness;
  registry: Registry;
  etcdEndpoints: readonly string[];
  /** A cheap etcd read; rejects when etcd cannot be reached. */
  etcdCheck: () => Promise<unknown>;
}

export async function buildStatusModel(sources: StatusSources): Promise<StatusModel> {
  const { ownLease } = sources;
  const probed = sources.probing?.results();
  const reachable = await sources.etcdCheck().then(
    () => true as const,
    (error: unknown) => errorMessage(error),
  );
  return {
    version: VERSION,
    backend: sources.backend ?? "-",
    hostname: hostname(),
    lease: ownLease && { subnet: primarySubnet(ownLease).toString(), publicIP: hostAddress(ownLease.attrs) ?? ownLease.attrs.publicIP, expiresAt: ownLease.expiresAt, reservation: ownLease.reservation },
    etcd: { endpoints: sources.etcdEndpoints.join(", "), reachable },
    ready: sources.readiness,
    peers: sources.peers.map((lease) => {
      const result = probed?.get(primarySubnet(lease).toString());
      return {
        subnet: primarySubnet(lease).toString(),
        publicIP: hostAddress(lease.attrs) ?? lease.attrs.publicIP,
        ...(result ? { verdict: result.verdict.kind, advice: formatVerdict(result.verdict), rttMicros: rttSummary(result.underlay.rttMicros)?.avg } : {}),
      };
    }),
    probing: sources.probing !== undefined,
    counters: await statusCounters(sources.registry),
    now: new Date(),
  };
}
