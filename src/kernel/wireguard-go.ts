import { existsSync } from "node:fs";
import { access, constants, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { sleep } from "../async/sleep.js";
import { CommandMissingError } from "../process/command-errors.js";
import { spawnDetached, spawnDetachedInNamespace } from "../process/detached.js";
import { isAlive, terminatePids } from "../process/pids.js";
import { runCommand } from "../process/run-command.js";
import type { WireguardDevice } from "./wireguard-device.js";

/**
 * Debian's wireguard-go serving a WireGuard device for weft: started in the foreground (`-f`)
 * but detached (its own session and process group), so it outlives the daemon that started it:
 * the device lives exactly as long as the process, and a weft restart must not cut traffic. The
 * next daemon finds the device by asking it (`wg show`, over the UAPI socket
 * /run/wireguard/<dev>.sock); the PID file in the state directory says which process is ours
 * (`weft cleanup` stops it). Its log goes next to the PID file.
 *
 * Under systemd a detached child is still in weft.service's cgroup, and `systemctl restart weft`
 * (or a crash and Restart=) kills the whole cgroup (KillMode=mixed: SIGKILL to what is left):
 * the device and every session went with it. There wireguard-go runs as a transient unit of its
 * own, `weft-wireguard-go-<device>.service` (systemd-run, in weft's network namespace), and only
 * weft stopping it (a device to re-create, `weft cleanup`) ends it; its log is that unit's journal.
 */

const START_TIMEOUT_MS = 10_000;

/** Whether `wireguard-go` is an executable on `env`'s PATH (the choice of "auto" asks before it runs anything). */
export async function wireguardGoOnPath(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  return (await findOnPath("wireguard-go", env)) !== undefined;
}

async function findOnPath(program: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const path = join(dir, program);
    if (await access(path, constants.X_OK).then(() => true, () => false)) return path;
  }
  return undefined;
}

/** The transient unit wireguard-go runs in under systemd. */
export function wireguardGoUnitName(device: string): string {
  return `weft-wireguard-go-${device}.service`;
}

/**
 * Whether to start wireguard-go as a unit of its own: weft is a service of a booted systemd
 * (`service`: the daemon was given $NOTIFY_SOCKET, weft.service is Type=notify; systemd sets
 * $INVOCATION_ID for every unit it runs, a test's fake service manager does not) and the device is
 * in weft's own namespace (a lab host's device, in a namespace of its own with its own
 * /run/wireguard, must stay the lab's). Checked again at each start.
 */
export function startsAsSystemdUnit(device: WireguardDevice, service: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return service && device.netns === undefined && (env.INVOCATION_ID ?? "") !== "" && existsSync("/run/systemd/system");
}

/** systemd-run's arguments for the device's unit: weft's network namespace, the journal for its log. */
export function systemdRunArguments(device: string, program: string, pid: number): string[] {
  return [
    "--unit", wireguardGoUnitName(device),
    "--description", `wireguard-go for ${device} (started by weft; weft cleanup stops it)`,
    "--collect", "--quiet",
    "--setenv=LOG_LEVEL=error",
    // The unit would otherwise get PID 1's namespace; weft.service could have one of its own.
    "--property", `NetworkNamespacePath=/proc/${pid}/ns/net`,
    // The data path before the control plane, as the kernel's WireGuard (softirq and kworkers)
    // is: when weft starts (node's start-up is a burst of CPU) or a host is busy, wireguard-go gets
    // ten shares to every other unit's one (default CPUWeight 100). Seen in a one-vCPU VM: a weft
    // restart starved it until its socket dropped a third of a ping stream.
    "--property", "CPUWeight=1000",
    "--", program, "-f", device,
  ];
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
 * with the end of its log. `service`: weft runs as a systemd service (startsAsSystemdUnit).
 */
export async function startWireguardGo(device: WireguardDevice, stateDir: string, options: { service?: boolean } = {}): Promise<number> {
  const asUnit = startsAsSystemdUnit(device, options.service ?? false);
  const logFile = asUnit ? `the journal of ${wireguardGoUnitName(device.name)}` : wireguardGoLogFile(stateDir, device.name);
  const pid = asUnit ? await startAsUnit(device.name) : spawnWireguardGo(device, logFile);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) {
      const log = asUnit ? await unitLog(device.name) : (await readFile(logFile, "utf8").catch(() => "")).trim().split("\n").slice(-3).join(" | ");
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

function spawnWireguardGo(device: WireguardDevice, logFile: string): number {
  const env = { ...process.env, LOG_LEVEL: "error" };
  const args = ["-f", device.name];
  try {
    return device.netns === undefined ? spawnDetached("wireguard-go", args, logFile, env) : spawnDetachedInNamespace(device.netns, "wireguard-go", args, logFile, env);
  } catch (error) {
    throw new CommandMissingError("wireguard-go", { purpose: 'Backend.Implementation "wireguard-go" runs it', cause: error });
  }
}

/** Starts the device's transient unit and returns its main PID. */
async function startAsUnit(device: string): Promise<number> {
  const program = await findOnPath("wireguard-go", process.env);
  if (program === undefined) throw new CommandMissingError("wireguard-go", { purpose: 'Backend.Implementation "wireguard-go" runs it' });
  const unit = wireguardGoUnitName(device);
  // A unit of that name left failed by an earlier run would refuse the new one.
  await runCommand("systemctl", ["reset-failed", unit], { allowFailure: true });
  await runCommand("systemd-run", systemdRunArguments(device, program, process.pid));
  const pid = Number((await runCommand("systemctl", ["show", "--property", "MainPID", "--value", unit])).stdout.trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`wireguard-go for ${device}: ${unit} was started but has no main process (journalctl -u ${unit}: ${await unitLog(device)})`);
  return pid;
}

async function unitLog(device: string): Promise<string> {
  const result = await runCommand("journalctl", ["--unit", wireguardGoUnitName(device), "--lines", "3", "--output", "cat", "--no-pager"], { allowFailure: true });
  return result.stdout.trim().split("\n").join(" | ");
}

/** Stops the wireguard-go weft started for `device` (its device goes with it); returns its PID, or undefined if none ran. */
export async function stopWireguardGo(stateDir: string, device: string): Promise<number | undefined> {
  const pid = await runningWireguardGo(stateDir, device);
  if (pid !== undefined) await terminatePids([pid], 3000);
  await rm(wireguardGoPidFile(stateDir, device), { force: true });
  return pid;
}
