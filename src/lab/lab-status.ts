import { formatTable } from "../observe/text-table.js";
import { probeReadyz } from "./lab-daemon.js";
import type { Lab } from "./lab-handle.js";
import { listNamespaces } from "./netns.js";
import { isAlive } from "../process/pids.js";

/**
 * What `weft lab up` and `weft lab status` print: the lab's underlay, etcd, hosts and
 * containers. `live` also checks that namespaces exist and daemons and etcd run.
 */
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
      return [host.name, host.namespace + presence(host.namespace), `${host.underlayAddress} ${host.underlayDevice}`, host.subnet ?? "-", host.bridgeAddress ?? "-", String(host.mtu ?? "-"), daemon];
    }),
  );
  const containerRows = state.containers.map((container) => [
    container.name,
    container.namespace + presence(container.namespace),
    container.address ? `${container.address}/${container.prefixLength}` : "-",
    String(container.mtu ?? "-"),
  ]);
  const etcdLive = live && state.etcd.pid !== undefined ? (isAlive(state.etcd.pid) ? " running" : " DEAD") : "";
  const lines = [
    `lab "${state.name}"  backend ${state.backend}  daemons ${state.daemons}${state.ipMasq ? "  ip-masq" : ""}  dir ${state.labDir}`,
    `underlay ${state.underlay.cidr} on bridge ${state.underlay.bridge} in ${state.underlay.namespace}${presence(state.underlay.namespace)}, MTU ${state.underlay.mtu}`,
    `etcd     ${state.etcd.endpoint} in ${state.etcd.namespace}${presence(state.etcd.namespace)} (PID ${state.etcd.pid ?? "-"}${etcdLive}), log ${state.etcd.logFile}`,
    ...(state.internet ? [`internet ${state.internet.address} in ${state.internet.namespace}${presence(state.internet.namespace)} (outside the Network)`] : []),
    ...(state.networkConfig ? [`config   ${JSON.stringify(state.networkConfig)}`] : []),
    "",
    formatTable([["HOST", "NAMESPACE", "UNDERLAY", "SUBNET", "DOCKER0", "MTU", "DAEMON"], ...hostRows]),
    "",
    formatTable([["CONTAINER", "NAMESPACE", "ADDRESS", "MTU"], ...containerRows]),
    "",
    `logs: ${state.hosts.map((host) => host.logFile).join(", ")}`,
  ];
  return lines.join("\n") + "\n";
}
