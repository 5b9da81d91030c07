import { Counter, type Registry } from "prom-client";
import type { EngineCounters } from "./counters.js";

/**
 * weft_dataplane_* on the daemon's registry, read from the engine at every scrape (the engine
 * counts in its own threads; nothing is pushed). Labels: direction = inside (TUN to underlay)
 * or outside (underlay to TUN); reason = why a packet was dropped; the other engine counters
 * are one counter each (weft_dataplane_tun_reads_total, ...).
 */
export type CounterSource = () => EngineCounters | undefined;

interface EngineMetrics {
  sources: Set<CounterSource>;
}

const byRegistry = new WeakMap<Registry, EngineMetrics>();

function sum(sources: Iterable<CounterSource>): EngineCounters[] {
  const result: EngineCounters[] = [];
  for (const source of sources) {
    const counters = source();
    if (counters) result.push(counters);
  }
  return result;
}

function register(registry: Registry): EngineMetrics {
  const metrics: EngineMetrics = { sources: new Set() };
  const define = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (counter: Counter<L>, all: EngineCounters[]) => void,
  ) =>
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // Absolute values from the engine: start from zero at every scrape.
        this.reset();
        fill(this, sum(metrics.sources));
      },
    });
  const directions = ["inside", "outside"] as const;
  const perDirection = (pick: (counters: EngineCounters, direction: "inside" | "outside") => number) =>
    (counter: Counter<"direction">, all: EngineCounters[]) => {
      for (const direction of directions) counter.inc({ direction }, all.reduce((n, c) => n + pick(c, direction), 0));
    };
  define("weft_dataplane_packets_total", "Inner packets forwarded by the userspace engine", ["direction"], perDirection((c, d) => c[d].packets));
  define("weft_dataplane_bytes_total", "Inner bytes forwarded by the userspace engine", ["direction"], perDirection((c, d) => c[d].bytes));
  define("weft_dataplane_batches_total", "sendmmsg (inside) or recvmmsg (outside) calls", ["direction"], perDirection((c, d) => c[d].batches));
  define(
    "weft_dataplane_batch_datagrams_total",
    "UDP datagrams moved by those calls (divide by weft_dataplane_batches_total for the mean batch size)",
    ["direction"],
    perDirection((c, d) => c[d].batchDatagrams),
  );
  define(
    "weft_dataplane_ipv6_packets_total",
    "Inner IPv6 packets forwarded by the userspace engine (a part of weft_dataplane_packets_total)",
    ["direction"],
    perDirection((c, d) => c[d].detail.ipv6_packets ?? 0),
  );
  define("weft_dataplane_drops_total", "Packets the engine dropped, by reason", ["direction", "reason"], (counter, all) => {
    for (const counters of all) {
      for (const direction of directions) {
        for (const [reason, value] of Object.entries(counters[direction].drops)) counter.inc({ direction, reason }, value);
      }
    }
  });
  // One counter per quantity (each was an `event` label of one mixed counter, summing to nothing).
  for (const [event, direction, help] of ENGINE_EVENT_COUNTERS) {
    define(`weft_dataplane_${event}_total`, help, [], (counter, all) => counter.inc(all.reduce((n, c) => n + (c[direction].detail[event] ?? 0), 0)));
  }
  return metrics;
}

/** The engine's other counters, each in the one direction that has it (native/src: inside.c, outside.c). */
const ENGINE_EVENT_COUNTERS: ReadonlyArray<readonly [string, "inside" | "outside", string]> = [
  ["tun_reads", "inside", "read() calls on the TUN device (each may return a super-packet)"],
  ["super_packets", "inside", "TSO/GSO super-packets read from the TUN and split into segments"],
  ["icmp_sent", "inside", "ICMP and ICMPv6 errors the engine sent back into the TUN (unreachable, TTL/hop limit exceeded, packet too big)"],
  ["tun_writes", "outside", "write() calls on the TUN device"],
  ["coalesced_packets", "outside", "Received packets coalesced (GRO) into a bigger write to the TUN"],
];

/** Exports `source`'s counters on `registry` until the returned function is called. */
export function exportEngineCounters(registry: Registry, source: CounterSource): () => void {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = register(registry);
    byRegistry.set(registry, metrics);
  }
  const sources = metrics.sources;
  sources.add(source);
  return () => sources.delete(source);
}
