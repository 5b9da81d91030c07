/**
 * Engine counters shaped for people and for /metrics. The addon exports a flat list named
 * "inside.packets", "outside.drop.wrong_vni", ...; inside = TUN to underlay, outside =
 * underlay to TUN.
 */
export type Direction = "inside" | "outside";

export interface DirectionCounters {
  /** Inner packets forwarded (segments of super-packets counted one by one). */
  packets: number;
  bytes: number;
  /** Syscalls that moved a batch: sendmmsg (inside) or recvmmsg (outside). */
  batches: number;
  /** UDP datagrams those batches moved; batchDatagrams / batches is the mean batch size. */
  batchDatagrams: number;
  /** Dropped packets by reason (every reason present, 0 when none). */
  drops: Record<string, number>;
  /** Everything else the addon counts (tun_reads, super_packets, icmp_sent, ...). */
  detail: Record<string, number>;
}

export type EngineCounters = Record<Direction, DirectionCounters>;

function emptyDirection(): DirectionCounters {
  return { packets: 0, bytes: 0, batches: 0, batchDatagrams: 0, drops: {}, detail: {} };
}

export function shapeCounters(names: readonly string[], values: Float64Array): EngineCounters {
  const result: EngineCounters = { inside: emptyDirection(), outside: emptyDirection() };
  names.forEach((name, i) => {
    const value = values[i] ?? 0;
    const [direction, ...rest] = name.split(".");
    if (direction !== "inside" && direction !== "outside") return;
    const target = result[direction];
    const key = rest.join(".");
    if (rest[0] === "drop") target.drops[rest.slice(1).join(".")] = value;
    else if (key === "packets") target.packets = value;
    else if (key === "bytes") target.bytes = value;
    else if (key === "send_calls" || key === "recv_calls") target.batches = value;
    else if (key === "datagrams") target.batchDatagrams = value;
    else target.detail[key] = value;
  });
  return result;
}

export function totalDrops(counters: DirectionCounters): number {
  return Object.values(counters.drops).reduce((sum, n) => sum + n, 0);
}
