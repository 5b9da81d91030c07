import { hostname } from "node:os";
import type { Registry } from "prom-client";
import { errorMessage } from "../errors/error-message.js";
import type { Lease } from "../lease/types.js";
import type { Readiness } from "../observe/http-server.js";
import { statusCounters, type StatusModel, type StatusPath } from "../observe/status-page.js";
import { VERSION } from "../version.js";
import type { PeerProbeResult } from "./peer-probe.js";
import type { PeerProbing } from "./peer-prober.js";
import { carriesIpv6 } from "./probe-targets.js";
import { formatIpv6, tryParseIpv6 } from "../net/ipv6.js";
import { rttSummary } from "./probe-report.js";
import { formatVerdict } from "./verdict.js";
import { NO_PUBLIC_IP } from "../lease/host-address.js";

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
    lease: ownLease && { ...leaseFamilies(ownLease), expiresAt: ownLease.expiresAt, reservation: ownLease.reservation },
    etcd: { endpoints: sources.etcdEndpoints.join(", "), reachable },
    ready: sources.readiness,
    peers: sources.peers.map((lease) => ({ paths: statusPaths(lease, sources.backend, probed) })),
    probing: sources.probing !== undefined,
    counters: await statusCounters(sources.registry),
    now: new Date(),
  };
}

/**
 * A lease's rows on the page: its IPv4 subnet via PublicIP, its IPv6 subnet via PublicIPv6, each
 * with the last probe result of that path (probe-targets.ts makes the same paths, keyed by subnet).
 */
function statusPaths(lease: Lease, backend: string | undefined, probed: ReadonlyMap<string, PeerProbeResult> | undefined): StatusPath[] {
  const paths: StatusPath[] = [];
  const withResult = (path: StatusPath): StatusPath => {
    const result = probed?.get(path.subnet);
    return result ? { ...path, verdict: result.verdict.kind, advice: formatVerdict(result.verdict), rttMicros: rttSummary(result.underlay.rttMicros)?.avg } : path;
  };
  if (lease.subnet) paths.push(withResult({ family: 4, subnet: lease.subnet.toString(), publicIP: lease.attrs.publicIP === NO_PUBLIC_IP ? "-" : lease.attrs.publicIP }));
  if (lease.ipv6Subnet) {
    const publicIPv6 = lease.attrs.publicIPv6 === null ? undefined : tryParseIpv6(lease.attrs.publicIPv6);
    const path: StatusPath = { family: 6, subnet: lease.ipv6Subnet.toString(), publicIP: publicIPv6 === undefined ? "-" : formatIpv6(publicIPv6) };
    if (publicIPv6 === undefined) paths.push({ ...path, notProbed: "the lease has no PublicIPv6" });
    else if (backend !== undefined && !carriesIpv6({ type: backend, options: {} })) paths.push({ ...path, notProbed: `the ${backend} backend carries no IPv6` });
    else paths.push(withResult(path));
  }
  return paths;
}

/** The own lease's subnets and addresses of both families, "10.66.5.0/24 fd66:0:0:5::/64" and "192.168.77.11 fd77::11". */
function leaseFamilies(lease: Lease): { subnet: string; publicIP: string } {
  const publicIPv6 = lease.attrs.publicIPv6 === null ? undefined : tryParseIpv6(lease.attrs.publicIPv6);
  const subnets = [lease.subnet?.toString(), lease.ipv6Subnet?.toString()];
  const addresses = [lease.attrs.publicIP === NO_PUBLIC_IP ? undefined : lease.attrs.publicIP, publicIPv6 === undefined ? undefined : formatIpv6(publicIPv6)];
  const present = (values: (string | undefined)[]) => values.filter((value): value is string => value !== undefined).join(" ");
  return { subnet: present(subnets), publicIP: present(addresses) || lease.attrs.publicIP };
}
