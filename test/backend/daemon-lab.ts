import { expect } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import { doctorOn, useLab, type LabSetup } from "../support/lab.js";
import type { CommandResult } from "../../src/process/run-command.js";
import { withDaemonPaused } from "../support/paused-daemon.js";

/**
 * A lab with real daemons (dist/cli.js `weft run`) for one describe block: built before its tests,
 * removed after them, with `weft doctor` run on a host with that host's own flags.
 */
export interface DaemonLab {
  lab(): Lab;
  doctor(host: string, extra?: string[]): Promise<CommandResult>;
}

export function useDaemonLab(namePrefix: string, options: LabSetup): DaemonLab {
  const lab = useLab(namePrefix, options);
  const doctor = (host: string, extra: string[] = []) => doctorOn(lab(), host, extra);
  return { lab, doctor };
}

/** Deletes `host`'s IPv6 route to `subnetV6`; doctor must list it first, find it missing (exit 3), and --repair must put it back. */
export async function expectDoctorRepairsIpv6Route(daemons: DaemonLab, host: string, subnetV6: string): Promise<void> {
  const clean = await daemons.doctor(host);
  expect(clean.stdout).toContain(`route ${subnetV6} via`);
  expect(clean.stdout).toContain("in sync");
  // Paused: the daemon would put the route back on its kernel event before doctor looks.
  await withDaemonPaused(daemons.lab().host(host).state.daemonPid, async () => {
    await daemons.lab().host(host).exec("ip", ["-6", "route", "del", subnetV6]);
    const found = await daemons.doctor(host);
    expect(found.exitCode, found.stderr).toBe(3);
    expect(found.stdout).toContain(`add route ${subnetV6} via`);
    const repaired = await daemons.doctor(host, ["--repair"]);
    expect(repaired.exitCode, repaired.stderr).toBe(0);
  });
  expect((await daemons.lab().checkTable()).ok).toBe(true);
}
