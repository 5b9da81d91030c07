import type { LabHost } from "../../src/lab/lab.js";
import { metricSeries, readMetrics } from "./lab-metrics.js";

/**
 * Every drop counter a lost probe could have moved on a lab host, read before and after a fault
 * so that a test failing on "lost 1" also says where (or that no counter moved): the engine's
 * drops by reason (userspace backends), the kernel's UDP errors and each link's rx/tx drops.
 */
export type DropCounters = Map<string, number>;

export async function readDropCounters(host: LabHost): Promise<DropCounters> {
  const counters: DropCounters = new Map();
  const udp = await readUdpCounters(host);
  for (const name of ["InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts"]) {
    if (udp.has(name)) counters.set(`udp ${name}`, udp.get(name)!);
  }
  // Per CPU: processed, dropped (the backlog queue full: netdev_max_backlog), time squeezed.
  // Not per namespace: every host sees the machine's (a drop here is anyone's).
  const softnet = (await host.exec("cat", ["/proc/net/softnet_stat"], { allowFailure: true })).stdout;
  counters.set(
    "machine softnet backlog dropped",
    softnet
      .split("\n")
      .filter(Boolean)
      .reduce((sum, line) => sum + parseInt(line.split(/\s+/)[1] ?? "0", 16), 0),
  );
  const links = (await host.exec("ip", ["-s", "-j", "link", "show"], { allowFailure: true })).stdout;
  try {
    for (const link of JSON.parse(links || "[]") as Array<{ ifname: string; stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }>) {
      counters.set(`${link.ifname} rx dropped`, link.stats64?.rx?.dropped ?? 0);
      counters.set(`${link.ifname} tx dropped`, link.stats64?.tx?.dropped ?? 0);
    }
  } catch {
    counters.set("ip -s -j link unreadable", 1);
  }
  if (host.state.healthzPort) {
    // A daemon that is down (a restart scenario) has no engine counters: nothing to read then.
    const metrics = await readMetrics(host).catch(() => "");
    for (const [labels, value] of metricSeries(metrics, "weft_dataplane_drops_total")) counters.set(`engine ${labels}`, value);
  }
  return counters;
}

/** The host namespace's UDP counters of /proc/net/snmp by name (RcvbufErrors, …). */
export async function readUdpCounters(host: LabHost): Promise<Map<string, number>> {
  const snmp = (await host.exec("cat", ["/proc/net/snmp"], { allowFailure: true })).stdout;
  const [names, values] = snmp
    .split("\n")
    .filter((line) => line.startsWith("Udp: "))
    .map((line) => line.split(/\s+/));
  return new Map((names ?? []).slice(1).map((name, i) => [name, Number(values?.[i + 1])]));
}

/** The counters that moved, "h1: udp RcvbufErrors +1, ..."; a counter that went back (a restart) counts from 0. */
export function describeDrops(host: string, before: DropCounters, after: DropCounters): string | undefined {
  const moved: string[] = [];
  for (const [name, value] of after) {
    const previous = before.get(name) ?? 0;
    const delta = value >= previous ? value - previous : value;
    if (delta > 0) moved.push(`${name} +${delta}`);
  }
  return moved.length > 0 ? `${host}: ${moved.join(", ")}` : undefined;
}
