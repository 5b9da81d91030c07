import { existsSync, readFileSync } from "node:fs";
import { openEngine, type Engine, type EngineFds } from "../../engine/engine.js";
import { closeFds, handoverSocketPath, takeParkedFds } from "../../engine/handover/fd-handover.js";
import { takeListenFds } from "../../host/systemd/fd-store.js";
import { errorMessage } from "../../errors/error-message.js";
import { readSnapshot, type DataPathSnapshot, type SnapshotEngineOptions } from "./datapath-snapshot.js";

/**
 * The first thing `weft run` does (cli.ts, before yargs, etcd3 and the rest are even loaded):
 * bring a userspace data path back from `<state dir>/datapath.json` (docs/dataplane.md
 * "Restarts"). With the fds a gracefully stopped daemon parked in its holder, forwarding
 * continues on the very same TUN queues and sockets, and what they queued meanwhile goes out;
 * after a kill, the persistent TUN is re-attached by name and a new socket bound, so the gap is
 * this process's start, not the daemon's start-up with etcd. The engine waits here until the
 * backend claims it (same options: kept, peers reconciled from etcd) or discards it.
 */
export interface ResumedDataPath {
  engine: Engine;
  snapshot: DataPathSnapshot;
  /** "handed over": the parked fds; "re-attached": the persistent TUN by name, a new socket. */
  how: "handed over" | "re-attached";
  /** Milliseconds from this process' start to forwarding. */
  readyAfterMs: number;
}

interface EarlyResumeState {
  resumed?: ResumedDataPath;
  /** What went wrong on the way (a refused hand-over, an unreadable snapshot), for the daemon's log. */
  problems: string[];
}

const state: EarlyResumeState = { problems: [] };

/** Never throws: anything that goes wrong is a problem to log, and start-up goes the slow way. */
export async function resumeDataPathEarly(argv: readonly string[], environment: NodeJS.ProcessEnv): Promise<void> {
  const stateDir = stateDirOfRun(argv, environment);
  if (stateDir === undefined) return;
  let snapshot: DataPathSnapshot | undefined;
  try {
    snapshot = await readSnapshot(stateDir);
  } catch (error) {
    state.problems.push(errorMessage(error));
  }
  // Under systemd the unit's fd store hands them back; otherwise a holder may have them. With
  // neither, nor a snapshot (kernel backends, alloc), nothing here loads the native addon.
  let parked = fdsFromStore(takeListenFds(environment, process.pid));
  if (parked.length === 0 && existsSync(handoverSocketPath(stateDir))) {
    try {
      parked = takeParkedFds(stateDir);
    } catch (error) {
      state.problems.push(`fd hand-over: ${errorMessage(error)}`);
    }
  }
  if (!snapshot) {
    if (parked.length > 0) {
      state.problems.push(`fd hand-over: ${parked.length} fds but no data path snapshot to use them with; closed`);
      closeFds(parked);
    }
    return;
  }
  const options = { ...snapshot.engine, tunName: snapshot.device };
  const adopt = parked.length > 0 ? fdsForQueues(parked, options) : undefined;
  if (parked.length > 0 && !adopt) {
    state.problems.push(`fd hand-over: ${parked.length} fds do not fit ${options.queues ?? 1} queue(s) of ${options.tunName}; closed`);
    closeFds(parked);
  }
  let engine: Engine | undefined;
  let how: ResumedDataPath["how"] = "handed over";
  if (adopt) {
    try {
      engine = openEngine({ ...options, adopt, persist: true, paused: true });
    } catch (error) {
      // The native side closed the fds it was given.
      state.problems.push(`cannot forward on the handed-over fds: ${errorMessage(error)}`);
    }
  }
  if (!engine && deviceExists(options.tunName)) {
    how = "re-attached";
    try {
      engine = openEngine({ ...options, persist: true, paused: true });
    } catch (error) {
      state.problems.push(`cannot re-attach ${options.tunName}: ${errorMessage(error)}`);
    }
  }
  if (!engine) return;
  for (const peer of snapshot.peers) {
    try {
      engine.setPeer(peer);
    } catch (error) {
      state.problems.push(`saved peer ${peer.subnet}: ${errorMessage(error)}`);
    }
  }
  try {
    engine.start();
  } catch (error) {
    state.problems.push(`cannot start forwarding on ${options.tunName}: ${errorMessage(error)}`);
    engine.close();
    return;
  }
  state.resumed = { engine, snapshot, how, readyAfterMs: Math.round(performance.now()) };
}

/**
 * The resumed engine, if it was opened with exactly `options` by `backend`; then the caller owns
 * it. Otherwise the resumed engine (if any) stays for discardResumedDataPath.
 */
export function claimResumedDataPath(backend: string, options: SnapshotEngineOptions): ResumedDataPath | undefined {
  const resumed = state.resumed;
  if (!resumed || resumed.snapshot.backend !== backend || canonical(resumed.snapshot.engine) !== canonical(options)) return undefined;
  state.resumed = undefined;
  return resumed;
}

/**
 * Closes a resumed engine nobody claimed (the config or interface changed, another backend
 * runs now) and returns it, so the caller can delete its persistent device.
 */
export function discardResumedDataPath(): ResumedDataPath | undefined {
  const resumed = state.resumed;
  state.resumed = undefined;
  resumed?.engine.close();
  return resumed;
}

/** What happened, for the daemon's first log lines; the problems are reported once. */
export function earlyResumeReport(): { resumed?: Omit<ResumedDataPath, "engine" | "snapshot"> & { device: string; peers: number }; problems: string[] } {
  const problems = state.problems.splice(0);
  const resumed = state.resumed;
  return {
    ...(resumed ? { resumed: { how: resumed.how, readyAfterMs: resumed.readyAfterMs, device: resumed.engine.tunName, peers: resumed.snapshot.peers.length } } : {}),
    problems,
  };
}

/**
 * `weft run`'s --state-dir as yargs will read it (the last one wins; `--state-dir X`,
 * `--state-dir=X`, Go's single dash, $FLANNELD_STATE_DIR), or undefined when this is not a
 * `weft run` that will start (another command, --help, --version).
 */
export function stateDirOfRun(argv: readonly string[], environment: NodeJS.ProcessEnv): string | undefined {
  const positional = argv.find((arg) => !arg.startsWith("-"));
  if (positional !== "run" || argv.some((arg) => /^--?(help|version)$|^-h$/.test(arg))) return undefined;
  let stateDir = environment.FLANNELD_STATE_DIR || "/var/lib/weft";
  for (let i = 0; i < argv.length; i++) {
    const match = /^--?state-dir(?:=(.*))?$/.exec(argv[i] as string);
    if (!match) continue;
    const value = match[1] ?? argv[i + 1];
    if (value !== undefined && value !== "") stateDir = value;
  }
  return stateDir;
}

/** The FDNAME each of a data path's fds is stored under in systemd's fd store: weft-tun-0, weft-udp-0, weft-udp6-0, … */
export function storedFdEntries(fds: EngineFds): { name: string; fd: number }[] {
  const kinds = [["tun", fds.tun], ["udp", fds.udp], ["udp6", fds.udp6]] as const;
  return kinds.flatMap(([kind, list]) => list.map((fd, queue) => ({ name: `weft-${kind}-${queue}`, fd })));
}

/** Every name storedFdEntries can give (the engine's most queues), to clear the store of a data path that is gone. */
export function allStoredFdNames(maxQueues = 8): string[] {
  return ["tun", "udp", "udp6"].flatMap((kind) => Array.from({ length: maxQueues }, (_, queue) => `weft-${kind}-${queue}`));
}

/** systemd's LISTEN_FDS of a data path, in hand-over order (TUN queues, IPv4 sockets, IPv6 sockets). */
function fdsFromStore(passed: ReadonlyMap<string, number>): number[] {
  const ordered: number[] = [];
  for (const kind of ["tun", "udp", "udp6"]) {
    for (let queue = 0; passed.has(`weft-${kind}-${queue}`); queue++) ordered.push(passed.get(`weft-${kind}-${queue}`) as number);
  }
  return ordered;
}

/** Parked fds in their order (TUN queues, IPv4 sockets, IPv6 sockets) for the snapshot's queues; undefined if they do not fit. */
function fdsForQueues(fds: readonly number[], options: SnapshotEngineOptions): EngineFds | undefined {
  const queues = options.queues ?? 1;
  const v6 = options.bindAddressV6 !== undefined ? 1 : 0;
  if (fds.length !== queues * (2 + v6)) return undefined;
  return { tun: fds.slice(0, queues), udp: fds.slice(queues, 2 * queues), udp6: fds.slice(2 * queues) };
}

/** The device exists in this process' namespace (/proc/net/dev is per namespace; /sys may be another's). */
function deviceExists(name: string): boolean {
  try {
    return readFileSync("/proc/net/dev", "utf8").split("\n").some((line) => line.trim().startsWith(`${name}:`));
  } catch {
    return false;
  }
}

/** Key order does not matter, undefined fields are absent. */
function canonical(options: SnapshotEngineOptions): string {
  const entries = Object.entries(options).filter(([, value]) => value !== undefined);
  return JSON.stringify(Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b))));
}
