import { access, constants, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { sleep } from "../async/sleep.js";
import { CommandMissingError } from "../process/command-errors.js";
import { spawnDetached, spawnDetachedInNamespace } from "../process/detached.js";
import { isAlive, terminatePids } from "../process/pids.js";
import type { WireguardDevice } from "./wireguard-device.js";

/**
 * Debian's wireguard-go serving a WireGuard device for weft: started in the foreground (`-f`)
 * but detached (its own session and process group), so it outlives the daemon that started it:
 * the device lives exactly as long as the process, and a weft restart must not cut traffic. The
 * next daemon finds the device by asking it (`wg show`, over the UAPI socket
 * /run/wireguard/<dev>.sock); the PID file in the state directory says which process is ours
 * (`weft cleanup` stops it). Its log goes next to the PID file.
 */

const START_TIMEOUT_MS = 10_000;

/** Whether `wireguard-go` is an executable on `env`'s PATH (the choice of "auto" asks before it runs anything). */
export async function wireguardGoOnPath(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    if (await access(join(dir, "wireguard-go"), constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

export function wireguardGoPidFile(stateDir: string, device: string): string {
  return join(stateDir, `wireguard-go.${device}.pid`);
}

const PID_FILE = /^wireguard-go\.(.+)\.pid$/;

/** The devices of `stateDir` whose wireguard-go weft started (by their PID files; the process may be gone). */
export async function wireguardGoDevices(stateDir: string): Promise<string[]> {
  const names = await readdir(stateDir).catch(() => [] as string[]);
  return names.flatMap((name) => PID_FILE.exec(name)?.[1] ?? []);
}

export function wireguardGoLogFile(stateDir: string, device: string): string {
  return join(stateDir, `wireguard-go.${device}.log`);
}

/** The PID of the wireguard-go weft started for `device`, if it still runs (checked against /proc, not only the file). */
export async function runningWireguardGo(stateDir: string, device: string): Promise<number | undefined> {
  const text = await readFile(wireguardGoPidFile(stateDir, device), "utf8").catch(() => undefined);
  const pid = Number(text?.trim());
  if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) return undefined;
  // A recycled PID must not be taken for ours: its command line is `wireguard-go -f <device>`.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  const argv = cmdline.split("\0");
  return argv[0]?.endsWith("wireguard-go") && argv.includes(device) ? pid : undefined;
}

/**
 * Starts `wireguard-go -f <device>` in the device's namespace and waits until the device answers
 * wg; returns the PID (also written to the PID file). A process that dies first is reported
 * with the end of its log.
 */
export async function startWireguardGo(device: WireguardDevice, stateDir: string): Promise<number> {
  const logFile = wireguardGoLogFile(stateDir, device.name);
  const env = { ...process.env, LOG_LEVEL: "error" };
  const args = ["-f", device.name];
  let pid: number;
  try {
    pid = device.netns === undefined ? spawnDetached("wireguard-go", args, logFile, env) : spawnDetachedInNamespace(device.netns, "wireguard-go", args, logFile, env);
  } catch (error) {
    throw new CommandMissingError("wireguard-go", { purpose: 'Backend.Implementation "wireguard-go" runs it', cause: error });
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      const log = (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-3).join(" | ");
      if (/exec of "wireguard-go" failed|No such file or directory/.test(log)) {
        throw new CommandMissingError("wireguard-go", { purpose: 'Backend.Implementation "wireguard-go" runs it' });
      }
      throw new Error(`wireguard-go for ${device.where} exited at start: ${log || "(no output)"} (log ${logFile})`);
    }
    let answered: boolean;
    try {
      answered = (await device.readDump()) !== undefined;
    } catch (error) {
      await terminatePids([pid], 1000); // a wg that cannot run would leave the process serving nobody
      throw error;
    }
    if (answered) {
      await writeFile(wireguardGoPidFile(stateDir, device.name), `${pid}\n`);
      return pid;
    }
    await sleep(50);
  }
  await terminatePids([pid], 1000);
  throw new Error(`wireguard-go for ${device.where} did not answer wg within ${START_TIMEOUT_MS} ms (log ${logFile}); stopped it`);
}

/** Stops the wireguard-go weft started for `device` (its device goes with it); returns its PID, or undefined if none ran. */
export async function stopWireguardGo(stateDir: string, device: string): Promise<number | undefined> {
  const pid = await runningWireguardGo(stateDir, device);
  if (pid !== undefined) await terminatePids([pid], 3000);
  await rm(wireguardGoPidFile(stateDir, device), { force: true });
  return pid;
}
