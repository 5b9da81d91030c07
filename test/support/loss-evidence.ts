import type { LabHost } from "../../src/lab/lab.js";
import { metricSeries } from "./lab-metrics.js";

/**
 * Every drop counter a lost probe could have moved on a lab host, read before and after a fault
 * so that a test failing on "lost 1" also says where (or that no counter moved): the engine's
 * drops by reason (userspace backends), the kernel's UDP errors and each link's rx/tx drops.
 */
export type DropCounters = Map<string, number>;

export async function readDropCounters(host: LabHost): Promise<DropCounters> {
  const counters: DropCounters = new Map();
  const snmp = (await host.exec("cat", ["/proc/net/snmp"], { allowFailure: true })).stdout;
  const udp = snmp.split("\n").filter((line) => line.startsWith("Udp: "));
  const [names, values] = udp.map((line) => line.split(/\s+/));
  for (const name of ["InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts"]) {
    const index = names?.indexOf(name) ?? -1;
    if (index > 0) counters.set(`udp ${name}`, Number(values?.[index]));
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
    const metrics = (await host.exec("curl", ["-sf", "-m", "2", `http://127.0.0.1:${host.state.healthzPort}/metrics`], { allowFailure: true, timeoutMs: 5000 })).stdout;
    for (const [labels, value] of metricSeries(metrics, "weft_dataplane_drops_total")) counters.set(`engine ${labels}`, value);
  }
  return counters;
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
