import { Counter, type Registry } from "prom-client";
import type { EngineCounters } from "./counters.js";

/**
 * weft_dataplane_* on the daemon's registry, read from the engine at every scrape (the engine
 * counts in its own threads; nothing is pushed). Labels: direction = inside (TUN to underlay)
 * or outside (underlay to TUN); reason = why a packet was dropped; event = other counters.
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
  define("weft_dataplane_drops_total", "Packets the engine dropped, by reason", ["direction", "reason"], (counter, all) => {
    for (const counters of all) {
      for (const direction of directions) {
        for (const [reason, value] of Object.entries(counters[direction].drops)) counter.inc({ direction, reason }, value);
      }
    }
  });
  define("weft_dataplane_events_total", "Other engine counters (tun_reads, super_packets, icmp_sent, coalesced_packets, ...)", ["direction", "event"], (counter, all) => {
    for (const counters of all) {
      for (const direction of directions) {
        for (const [event, value] of Object.entries(counters[direction].detail)) counter.inc({ direction, event }, value);
      }
    }
  });
  return metrics;
}

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
