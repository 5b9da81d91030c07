/*
 * accept_ra on a vxlan device, the way the daemon touches it: through /proc/sys of its own
 * namespace, and with /proc/sys read-only as systemd's ProtectKernelTunables= makes it.
 *
 *   <p>ra  flannel.1 (vxlan, accept_ra 1)   ← a child node process in this namespace,
 *                                            once with /proc/sys remounted read-only
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { uniquePrefix } from "../../src/lab/netns.js";
import { runCommand } from "../../src/process/run-command.js";

const namespace = `${uniquePrefix("wra")}ra`;
const dist = fileURLToPath(new URL("../../dist/kernel/accept-ra.js", import.meta.url));

function script(body: string): string {
  return `import { AcceptRaReadOnlyError, acceptRa, disableAcceptRa } from ${JSON.stringify(dist)};\n${body}`;
}

beforeAll(async () => {
  await runCommand("ip", ["netns", "add", namespace]);
  await runCommand("ip", ["-n", namespace, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472"]);
  await runCommand("ip", ["netns", "exec", namespace, "sysctl", "-q", "-w", "net/ipv6/conf/flannel.1/accept_ra=1"]);
});

afterAll(async () => {
  await runCommand("ip", ["netns", "del", namespace], { allowFailure: true });
});

describe("accept_ra through /proc/sys", () => {
  it("says the write failed because /proc/sys is read-only, and changes nothing", async () => {
    const body = script(`try { await disableAcceptRa("flannel.1"); console.log("written"); } catch (error) { console.log(error instanceof AcceptRaReadOnlyError, error.message); }`);
    const result = await runCommand("ip", ["netns", "exec", namespace, "unshare", "--mount", "sh", "-c", 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" --input-type=module -e "$1"', process.execPath, body]);
    expect(result.stdout).toMatch(/^true cannot set \/proc\/sys\/net\/ipv6\/conf\/flannel\.1\/accept_ra to 0: EROFS/);
    const still = await runCommand("ip", ["netns", "exec", namespace, "sysctl", "-n", "net/ipv6/conf/flannel.1/accept_ra"]);
    expect(still.stdout.trim()).toBe("1");
  });

  it("reads and writes it in the process's own namespace, and reads undefined for no such device", async () => {
    const body = script(`await disableAcceptRa("flannel.1"); console.log(await acceptRa("flannel.1"), await acceptRa("flannel.9"));`);
    const result = await runCommand("ip", ["netns", "exec", namespace, process.execPath, "--input-type=module", "-e", body]);
    expect(result.stdout.trim()).toBe("0 undefined");
  });
});
