/**
 * What one bench run produces, as written to --json: every raw rep of every path, the settings
 * and the machine it ran on. The table, the chart and the summaries are all computed from this.
 */

/**
 * One TCP throughput run (iperf3) with the CPU time spent while it ran. CPU figures are scaled
 * to the measured seconds (iperf3 omits its first second from the bytes; the CPU sample spans
 * the whole run).
 */
export interface ThroughputRep {
  gbps: number;
  /** Bytes the receiver got. */
  bytes: number;
  retransmits: number;
  seconds: number;
  /** Busy CPU seconds of the whole machine (user+system+softirq+irq, all cores) during the run. */
  machineCpuSeconds: number;
  /** CPU seconds of the path's daemons (all their threads) during the run; absent for a path without daemons. */
  daemonCpuSeconds?: number;
  /** Busy CPU seconds per core (index = CPU number): in --cpu pinned, core i is host h(i+1). */
  perCoreCpuSeconds: number[];
  /** Of machineCpuSeconds, the softirq part (where the kernel's packet receive work is counted). */
  softirqCpuSeconds: number;
}

/** One rep of every measure; a measure that failed is absent and its error is in `errors`. */
export interface BenchRep {
  tcp1?: ThroughputRep;
  tcp4?: ThroughputRep;
  idleRttUs?: number;
  loadedRttUs?: number;
  /** Request/response transactions per second (sockperf ping-pong, 64-byte TCP messages). */
  requestsPerSecond?: number;
  /** UDP datagrams with 64-byte payloads received per second, and the share lost at that rate. */
  udpPacketsPerSecond?: number;
  udpLossPercent?: number;
  /** Largest resident set of the path's daemons after the rep, MiB. */
  daemonRssMiB?: number;
  errors: string[];
  /** Measures this machine's tools cannot take for this path (e.g. sockperf 3.7 and IPv6): absent, but not failures. */
  notMeasured?: string[];
}

export interface PathResult {
  id: string;
  label: string;
  /** MTU of the client's interface (what the containers see). */
  mtu?: number;
  /** The lab this path ran in (gone again when the bench returns): namespaces `<name>-*`, files in `dir`. */
  lab: { name: string; dir: string };
  /** --cpu pinned: the core of each lab host (its daemons, dockerd and measuring tools). */
  cores?: Record<string, string>;
  /** What ran as the path's daemons (e.g. "weft", "dockerd", "flanneld"); empty for none. */
  daemons: string;
  reps: BenchRep[];
  /** Set when the path could not be measured at all (its lab did not come up, …). */
  error?: string;
  /** 1-minute load average before and after: other work on the machine skews every figure. */
  load: [number, number];
  /** Seconds to build the lab and prepare the path. */
  setupSeconds?: number;
}

export interface BenchReport {
  version: 1;
  startedAt: string;
  finishedAt?: string;
  command: string;
  settings: {
    paths: string[];
    reps: number;
    duration: number;
    cpu: "shared" | "pinned";
    link?: string;
  };
  machine: { cpus: number; kernel: string; memoryGiB: number };
  results: PathResult[];
}
