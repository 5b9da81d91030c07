import { loadNativeAddon } from "../../engine/native-addon.js";

/**
 * systemd's file descriptor store (sd_notify FDSTORE=1, FileDescriptorStoreMax= in the unit):
 * fds a service gives systemd are kept while the unit is active or restarting, also across a
 * crash, and handed to the next process of the unit as LISTEN_FDS (sd_listen_fds(3)), each
 * under the FDNAME it was stored with. Under a unit this is what keeps a userspace data path's
 * TUN and sockets open between two daemon processes (docs/dataplane.md "Restarts"): a holder
 * process would be killed with the unit's control group.
 */
export interface FdStore {
  /** Stores each fd under its name (systemd keeps a copy; FDPOLL=0: it must not drop a readable socket). */
  store(entries: readonly { name: string; fd: number }[]): void;
  /** Removes the stored fds of these names (systemd closes its copies). */
  remove(names: readonly string[]): void;
}

type Send = (socket: string, message: string, fds?: readonly number[]) => void;

export function socketFdStore(socket: string, send: Send = (path, message, fds) => loadNativeAddon().notify(path, message, fds)): FdStore {
  return {
    store(entries) {
      for (const { name, fd } of entries) send(socket, `FDSTORE=1\nFDNAME=${name}\nFDPOLL=0`, [fd]);
    },
    remove(names) {
      for (const name of names) send(socket, `FDSTOREREMOVE=1\nFDNAME=${name}`);
    },
  };
}

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;
const LISTEN_VARIABLES = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] as const;

/**
 * The fds systemd passed this process (LISTEN_FDS for LISTEN_PID = `pid`), by FDNAME; the
 * variables are removed from `env` so no child takes them for its own. Empty when there are none
 * or they are meant for another process.
 */
export function takeListenFds(env: NodeJS.ProcessEnv, pid: number): Map<string, number> {
  const count = Number(env.LISTEN_FDS);
  const forPid = env.LISTEN_PID;
  const names = (env.LISTEN_FDNAMES ?? "").split(":");
  for (const name of LISTEN_VARIABLES) delete env[name];
  const fds = new Map<string, number>();
  if (!Number.isInteger(count) || count < 1 || forPid !== String(pid)) return fds;
  for (let index = 0; index < count; index++) fds.set(names[index] || `unknown-${index}`, LISTEN_FDS_START + index);
  return fds;
}
