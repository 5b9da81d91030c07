/*
 * Which WireGuard implementation runs, decided in the daemon's namespace (here a test namespace
 * <p>ns, empty but for lo): Implementation "kernel" is checked by creating a probe device, so on
 * this machine (no WireGuard module) it is refused with an error naming the module; "auto" falls
 * back to weft's userspace engine and says why; the per-host override wins over the config.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelWireguardUnavailableError, chooseImplementation, createWireguardBackend } from "../../../src/backend/wireguard/wireguard-backend.js";
import { parseWireguardOptions } from "../../../src/backend/wireguard/options.js";
import { probeKernelWireguard } from "../../../src/kernel/wireguard-device.js";
import { createNamespace, execInNamespace, uniquePrefix } from "../../../src/lab/netns.js";
import { runCommand } from "../../../src/process/run-command.js";
import { backendContext, capturingLogger } from "../kernel-fixtures.js";

const namespace = `${uniquePrefix("wgi")}ns`;
let kernelHasWireguard: boolean;

beforeAll(async () => {
  await createNamespace(namespace);
  kernelHasWireguard = (await probeKernelWireguard(namespace)).available;
});
afterAll(async () => {
  await runCommand("ip", ["netns", "del", namespace], { allowFailure: true });
});

describe("choosing the WireGuard implementation", () => {
  it("probes by creating a device, and leaves none behind", async () => {
    const probe = await probeKernelWireguard(namespace);
    if (!probe.available) expect(probe.reason).toMatch(/Unknown device type|not supported/i);
    const links = (await execInNamespace(namespace, "ip", ["-o", "link", "show"])).stdout.trim().split("\n");
    expect(links.map((link) => link.split(":")[1]?.trim())).toEqual(["lo"]);
  });

  it('"kernel" is refused where the kernel has no WireGuard, naming the module and the alternatives', async () => {
    const options = parseWireguardOptions({ Implementation: "kernel" });
    if (kernelHasWireguard) {
      expect(await chooseImplementation(options, {}, namespace)).toEqual({ implementation: "kernel", why: "Backend.Implementation" });
      return;
    }
    const refused = chooseImplementation(options, {}, namespace);
    await expect(refused).rejects.toBeInstanceOf(KernelWireguardUnavailableError);
    await expect(refused).rejects.toThrow(
      new RegExp(`^Backend\\.Implementation "kernel": the kernel of namespace "${namespace}" cannot create a WireGuard device .*Unknown device type.*load the wireguard kernel module \\(\`modprobe wireguard\`; a kernel built with CONFIG_WIREGUARD\\), or use Implementation "wireguard-go"`),
    );
  });

  it('the backend refuses "kernel" at register(), not at `weft config set` (which may run on another host)', async () => {
    const context = await backendContext({ Type: "wireguard", Implementation: "kernel" }, { name: "ul0", address: "192.168.77.11" });
    const { logger, lines } = capturingLogger();
    const backend = createWireguardBackend({ ...context, logger }, { netns: namespace, env: {} });
    if (kernelHasWireguard) return;
    await expect(backend.register()).rejects.toThrow(/wireguard kernel module/);
    expect(backend.implementation).toBeUndefined();
    expect(lines.filter((line) => line.msg.includes("carries the traffic"))).toHaveLength(0);
  });

  it('"auto" takes the kernel where it has WireGuard, else userspace, and says why', async () => {
    const choice = await chooseImplementation(parseWireguardOptions({}), {}, namespace);
    if (kernelHasWireguard) expect(choice.implementation).toBe("kernel");
    else {
      expect(choice.implementation).toBe("userspace");
      expect(choice.why).toMatch(new RegExp(`^Backend\\.Implementation "auto": the kernel of namespace "${namespace}" has no WireGuard \\(.*Unknown device type`));
    }
  });

  it("userspace and wireguard-go need no probe; $WEFT_WIREGUARD_IMPLEMENTATION overrides the config on one host", async () => {
    expect(await chooseImplementation(parseWireguardOptions({ Implementation: "wireguard-go" }), {}, "no-such-namespace-at-all")).toEqual({
      implementation: "wireguard-go", why: "Backend.Implementation",
    });
    const env = { WEFT_WIREGUARD_IMPLEMENTATION: "userspace" };
    const options = parseWireguardOptions({ Implementation: "wireguard-go" }, env);
    expect(options.implementation).toBe("userspace");
    expect(await chooseImplementation(options, env, namespace)).toEqual({ implementation: "userspace", why: "$WEFT_WIREGUARD_IMPLEMENTATION" });
    expect(() => parseWireguardOptions({}, { WEFT_WIREGUARD_IMPLEMENTATION: "fast" })).toThrow(
      /^\$WEFT_WIREGUARD_IMPLEMENTATION: "fast" is not one of auto, userspace, kernel, wireguard-go$/,
    );
    expect(() => parseWireguardOptions({ Implementation: "Kernel-Module" })).toThrow(/^Backend\.Implementation: "Kernel-Module" is not one of/);
    expect(parseWireguardOptions({ Implementation: "WireGuard-Go" }).implementation).toBe("wireguard-go");
  });
});
