import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { loadNativeAddon } from "../native-addon.js";

/**
 * Keeping a userspace data path's fds open from one daemon process to the next
 * (docs/dataplane.md "Restarts"). A daemon that stops gracefully parks them in a holder process
 * (holder.ts) listening on `<state dir>/handover.sock`; the next daemon takes them from there
 * before it does anything else. Packets arriving meanwhile wait in the kernel's queues.
 */

/** The holder's socket: in the state directory, so separate daemons (lab hosts) never meet. */
export function handoverSocketPath(stateDir: string): string {
  return join(stateDir, "handover.sock");
}

/** The holder's pid, for `weft cleanup` and the lab's teardown (they stop it by pid). */
export function holderPidPath(stateDir: string): string {
  return join(stateDir, "handover.pid");
}

/** The pid of the holder last started for this state directory, if its pid file is there. */
export function readHolderPid(stateDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(holderPidPath(stateDir), "utf8").trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** dist/engine/handover/holder.js, also when this module runs from src/ (tests): the holder must be plain JavaScript. */
const HOLDER_PATH = fileURLToPath(new URL("../../../dist/engine/handover/holder.js", import.meta.url));

export interface ParkedFds {
  /** The holder's pid (a test or `weft cleanup` may stop it by pid). */
  pid: number;
  socketPath: string;
}

/**
 * Starts a holder with `fds` and resolves once it listens; the caller then closes its own
 * copies. The holder gives them to the first daemon of our user that connects within
 * `timeoutMs`, else closes them. Rejects (naming the step) if it does not come up in 5 s.
 */
export async function parkFds(stateDir: string, fds: readonly number[], timeoutMs: number): Promise<ParkedFds> {
  const socketPath = handoverSocketPath(stateDir);
  const child = spawn(process.execPath, [HOLDER_PATH, socketPath, String(fds.length), String(Math.round(timeoutMs))], {
    // fds become the holder's 3, 4, …; its stderr is the daemon's (the journal under systemd).
    stdio: ["ignore", "pipe", "inherit", ...fds],
    detached: true,
  });
  const pid = child.pid;
  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => fail(new Error("did not listen within 5 s")), 5000);
    function fail(error: Error): void {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill("SIGKILL");
      reject(new Error(`fd holder (${HOLDER_PATH}) for ${socketPath}: ${error.message}`));
    }
    child.once("error", fail);
    child.once("exit", (code, signal) => fail(new Error(`exited (${signal ?? `code ${code}`}) before it listened`)));
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      output += chunk;
      if (!output.includes("ready\n")) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      child.removeAllListeners("error");
      child.stdout?.destroy();
      resolve();
    });
  });
  child.unref();
  if (pid === undefined) throw new Error(`fd holder for ${socketPath}: no pid`);
  writeFileSync(holderPidPath(stateDir), `${pid}\n`);
  return { pid, socketPath };
}

/**
 * The fds a holder parked for this state directory, in the order they were parked; [] when no
 * holder listens there (a first start, a killed daemon, a holder that timed out). Throws when
 * a holder answered but the hand-over broke (the message names the socket).
 */
export function takeParkedFds(stateDir: string, timeoutMs = 2000): number[] {
  const fds = loadNativeAddon().fdReceive(handoverSocketPath(stateDir), timeoutMs);
  if (fds.length > 0) rmSync(holderPidPath(stateDir), { force: true });
  return fds;
}

/** Closes fds that will not be used (a hand-over that does not fit this daemon's data path). */
export function closeFds(fds: readonly number[]): void {
  const addon = loadNativeAddon();
  for (const fd of fds) addon.closeFd(fd);
}
