/*
 * `weft cleanup` and the wireguard backend's device path: the wireguard-go weft started (found
 * by the PID file in the state dir) is stopped, and its device goes with it. The device name is
 * unique per run: wg's sockets in /run/wireguard are shared by every namespace on the machine.
 *
 *     <p>ns (empty but lo)
 *   +---------------------------------------------+
 *   |  <p>wg  TUN served by wireguard-go (weft's)  |
 *   +---------------------------------------------+
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupHost } from "../../../src/commands/cleanup.js";
import { WireguardDevice } from "../../../src/kernel/wireguard-device.js";
import { runningWireguardGo, startWireguardGo } from "../../../src/kernel/wireguard-go.js";
import { createNamespace, uniquePrefix } from "../../../src/lab/netns.js";
import { isAlive, terminatePids } from "../../../src/process/pids.js";
import { runCommand } from "../../../src/process/run-command.js";

const prefix = uniquePrefix("wgc");
const namespace = `${prefix}ns`;
const device = new WireguardDevice(`${prefix}wg`, namespace);
let stateDir: string;
let pid: number | undefined;

beforeAll(async () => {
  await createNamespace(namespace);
  stateDir = await mkdtemp(join(tmpdir(), "weft-wg-cleanup-"));
  pid = await startWireguardGo(device, stateDir);
}, 20_000);
afterAll(async () => {
  if (pid !== undefined) await terminatePids([pid], 1000);
  await runCommand("ip", ["netns", "del", namespace], { allowFailure: true });
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe("weft cleanup with the wireguard device path", () => {
  it("finds the wireguard-go weft started, and a dry run leaves it", async () => {
    expect(await runningWireguardGo(stateDir, device.name)).toBe(pid);
    const planned = await cleanupHost({ dryRun: true, netns: namespace, stateDir });
    expect(planned).toContain(`stop wireguard-go (pid ${pid}) and with it device ${device.name}`);
    expect(isAlive(pid as number)).toBe(true);
    expect(await device.readLink()).toBeDefined();
  });

  it("stops it: the process, its device and its PID file go", async () => {
    await cleanupHost({ dryRun: false, netns: namespace, stateDir });
    expect(isAlive(pid as number)).toBe(false);
    expect(await device.readLink()).toBeUndefined();
    expect((await readdir(stateDir)).filter((name) => name.endsWith(".pid"))).toEqual([]);
    expect(await cleanupHost({ dryRun: true, netns: namespace, stateDir })).not.toContainEqual(expect.stringMatching(/wireguard/i));
  });
});
