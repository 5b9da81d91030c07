import { formatTable } from "../observe/text-table.js";
import { probeReadyz } from "./lab-daemon.js";
import type { Lab } from "./lab-handle.js";
import { listNamespaces } from "./netns.js";
import { isAlive } from "../process/pids.js";
import { dockerCli, pingDockerd } from "./lab-docker.js";
import { dockerFiltersIpv6 } from "./docker-plan.js";
import type { LabHostState } from "./lab-state.js";

/**
 * What `weft lab up` and `weft lab status` print: the lab's underlay, etcd, hosts and
 * containers. `live` also checks that namespaces exist and daemons and etcd run (and, with
 * Docker, that each dockerd answers and what `docker ps` says of each container).
 */

/** `docker ps --all` of one host's dockerd: container name → its STATUS column; empty when it does not answer. */
async function dockerStatuses(host: LabHostState): Promise<Map<string, string>> {
  if (!host.dockerd || host.dockerd.pid === undefined || !isAlive(host.dockerd.pid)) return new Map();
  const result = await dockerCli(host.dockerd, ["ps", "--all", "--format", "{{.Names}}\t{{.Status}}"], { allowFailure: true, timeoutMs: 10_000 });
  if (result.exitCode !== 0) return new Map();
  return new Map(result.stdout.split("\n").filter((line) => line.includes("\t")).map((line) => line.split("\t") as [string, string]));
}
export async function describeLab(lab: Lab, live: boolean): Promise<string> {
  const { state } = lab;
  const namespaces = live ? new Set(await listNamespaces()) : undefined;
  const presence = (namespace: string): string => (namespaces ? (namespaces.has(namespace) ? "" : " (MISSING)") : "");
  const hostRows = await Promise.all(
    state.hosts.map(async (host) => {
      let daemon = host.daemonPid === undefined ? "-" : String(host.daemonPid);
      if (live && host.daemonPid !== undefined) {
        daemon += !isAlive(host.daemonPid) ? " dead" : (await probeReadyz(host)) ? " ready" : " not ready";
      }
      const underlay = `${host.underlayAddress}${host.underlayAddressV6 ? ` ${host.underlayAddressV6}` : ""} ${host.underlayDevice}`;
      const bridge = `${host.bridgeAddress ?? "-"}${host.bridgeAddressV6 ? ` ${host.bridgeAddressV6}` : ""}`;
      const row = [host.name, host.namespace + presence(host.namespace), underlay, host.subnet ?? "-", bridge, String(host.mtu ?? "-"), daemon];
      if (state.docker) {
        const pid = host.dockerd?.pid;
        let dockerd = pid === undefined ? "-" : String(pid);
        if (live && pid !== undefined) dockerd += !isAlive(pid) ? " dead" : (await pingDockerd(host.dockerd?.socket ?? "")) ? " ready" : " not answering";
        row.push(dockerd);
      }
      return row;
    }),
  );
  const statuses = new Map<string, Map<string, string>>();
  if (live && state.docker) for (const host of state.hosts) statuses.set(host.name, await dockerStatuses(host));
  const containerRows = state.containers.map((container) => {
    const row = [
      container.name,
      container.namespace + presence(container.namespace),
      (container.address ? `${container.address}/${container.prefixLength}` : "-") + (container.addressV6 ? ` ${container.addressV6}/${container.prefixLengthV6}` : ""),
      String(container.mtu ?? "-"),
    ];
    if (state.docker) {
      row.push(container.docker ? container.docker.id.slice(0, 12) : "-", container.docker ? String(container.docker.pid) : "-");
      if (live) row.push(statuses.get(container.host)?.get(container.name) ?? "not in docker ps");
    }
    return row;
  });
  const docker = state.docker;
  const ipv6 = state.underlay.cidrV6 !== undefined;
  const ip6tables = ipv6 && docker !== undefined && dockerFiltersIpv6(docker) ? " --ip6tables" : "";
  const bridgeHeader = docker?.mode === "network" ? `NETWORK ${docker.network ?? ""}` : "DOCKER0";
  const hostHeader = ["HOST", "NAMESPACE", "UNDERLAY", "SUBNET", bridgeHeader, "MTU", "DAEMON", ...(docker ? ["DOCKERD"] : [])];
  const containerHeader = ["CONTAINER", "NAMESPACE", "ADDRESS", "MTU", ...(docker ? ["DOCKER ID", "PID", ...(live ? ["STATUS"] : [])] : [])];
  const dockerLines = docker
    ? [
        docker.mode === "network"
          ? `docker   a dockerd per host; containers on \`docker network create --subnet=<FLANNEL_SUBNET>${ipv6 ? " --ipv6 --subnet=<FLANNEL_IPV6_SUBNET>" : ""} -o com.docker.network.driver.mtu=<FLANNEL_MTU> ${docker.network}\` (docker0 left alone); image ${docker.image}`
          : `docker   a dockerd per host with --bip=<FLANNEL_SUBNET>${ipv6 ? ` --ipv6 --fixed-cidr-v6=<FLANNEL_IPV6_SUBNET>${ip6tables}` : ""} --mtu=<FLANNEL_MTU> (flannel's Docker drop-in); containers on docker0; image ${docker.image}`,
        `         e.g. docker --host=unix://${state.hosts[0]?.dockerd?.socket ?? "<labdir>/h1/docker/docker.sock"} ps`,
      ]
    : [];
  const etcdLive = live && state.etcd.pid !== undefined ? (isAlive(state.etcd.pid) ? " running" : " DEAD") : "";
  const lines = [
    `lab "${state.name}"  backend ${state.backend}  daemons ${state.daemons}${state.ipMasq ? "  ip-masq" : ""}  dir ${state.labDir}`,
    `underlay ${state.underlay.cidr}${state.underlay.cidrV6 ? ` and ${state.underlay.cidrV6}` : ""} on bridge ${state.underlay.bridge} in ${state.underlay.namespace}${presence(state.underlay.namespace)}, MTU ${state.underlay.mtu}`,
    `etcd     ${state.etcd.endpoint} in ${state.etcd.namespace}${presence(state.etcd.namespace)} (PID ${state.etcd.pid ?? "-"}${etcdLive}), log ${state.etcd.logFile}`,
    ...(state.internet ? [`internet ${state.internet.address} in ${state.internet.namespace}${presence(state.internet.namespace)} (outside the Network)`] : []),
    ...(state.networkConfig ? [`config   ${JSON.stringify(state.networkConfig)}`] : []),
    ...dockerLines,
    "",
    formatTable([hostHeader, ...hostRows]),
    "",
    formatTable([containerHeader, ...containerRows]),
    "",
    `logs: ${state.hosts.map((host) => host.logFile).join(", ")}`,
    ...(docker ? [`dockerd logs: ${state.hosts.map((host) => host.dockerd?.logFile ?? "-").join(", ")}`] : []),
  ];
  return lines.join("\n") + "\n";
}
