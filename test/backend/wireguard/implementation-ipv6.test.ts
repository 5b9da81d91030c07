/*
 * Which WireGuard implementation runs on a dual-stack network (EnableIPv6), decided in a test
 * namespace <p>ns (empty but for lo; this machine's kernel has no WireGuard): weft's userspace
 * engine forwards IPv6 in Mode "separate" (the default), so "auto" takes it there; in the other
 * Modes it forwards IPv4 only, so "auto" takes wireguard-go when it is on PATH, and says why;
 * without it (or with "userspace" asked for) the userspace engine runs with one loud warning.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseImplementation, createWireguardBackend } from "../../../src/backend/wireguard/wireguard-backend.js";
import { parseWireguardOptions } from "../../../src/backend/wireguard/options.js";
import { probeKernelWireguard } from "../../../src/kernel/wireguard-device.js";
import { createNamespace, uniquePrefix } from "../../../src/lab/netns.js";
import { runCommand } from "../../../src/process/run-command.js";
import { DUAL_STACK, backendContext, capturingLogger } from "../kernel-fixtures.js";

const namespace = `${uniquePrefix("wgi6")}ns`;
let kernelHasWireguard: boolean;
const withGo = { PATH: "/usr/local/bin:/usr/bin:/bin" };
const withoutGo = { PATH: "/nonexistent-weft-test-dir" };

beforeAll(async () => {
  await createNamespace(namespace);
  kernelHasWireguard = (await probeKernelWireguard(namespace)).available;
});
afterAll(async () => {
  await runCommand("ip", ["netns", "del", namespace], { allowFailure: true });
});

describe("choosing the WireGuard implementation on a dual-stack network", () => {
  it('"auto" in Mode "separate" takes the userspace engine where the kernel has no WireGuard (it forwards IPv6 there), even with wireguard-go on PATH', async () => {
    if (kernelHasWireguard) return;
    const choice = await chooseImplementation(parseWireguardOptions({}), withGo, namespace, true);
    expect(choice.implementation).toBe("userspace");
    expect(choice.why).toMatch(/has no WireGuard .*; it forwards IPv6 too in Mode "separate"$/);
    expect((await chooseImplementation(parseWireguardOptions({}), withGo, namespace, false)).implementation).toBe("userspace");
  });

  it('"auto" in a single-interface Mode takes wireguard-go, naming the Mode the userspace engine has no IPv6 in', async () => {
    if (kernelHasWireguard) return;
    const choice = await chooseImplementation(parseWireguardOptions({ Mode: "auto" }), withGo, namespace, true);
    expect(choice.implementation).toBe("wireguard-go");
    expect(choice.why).toMatch(/has no WireGuard .*dual-stack \(EnableIPv6\) in Mode "auto", in which weft's userspace engine forwards IPv4 only: wireguard-go is on PATH$/);
  });

  it('"auto" in a single-interface Mode without wireguard-go on PATH falls back to userspace', async () => {
    if (kernelHasWireguard) return;
    const choice = await chooseImplementation(parseWireguardOptions({ Mode: "ipv4" }), withoutGo, namespace, true);
    expect(choice).toMatchObject({ implementation: "userspace", why: expect.stringMatching(/and no wireguard-go on PATH$/) });
  });

  it('"userspace" asked for on a dual-stack network forwards IPv6 in Mode "separate", warns in Mode "auto"; with Mode "ipv6" it is refused', async () => {
    const external = { name: "ul0", address: "192.168.77.11", addressV6: "fd77::11" };
    const separate = await backendContext({ Type: "wireguard", Implementation: "userspace" }, external, undefined, DUAL_STACK);
    const quiet = capturingLogger();
    const forwarding = createWireguardBackend({ ...separate, logger: quiet.logger }, { netns: namespace, env: withoutGo });
    // Only the choice is wanted here: a dry-run reconcile makes it without opening the engine.
    await forwarding.reconcile({ dryRun: true }).catch(() => undefined);
    expect(quiet.lines.filter((line) => line.level === 40)).toEqual([]);
    expect(forwarding.dataPathDetails()).toEqual({ wireguardImplementation: "userspace", wireguardIpv6: "forwarded (Mode separate: a second interface on ListenPortV6 51821)" });

    const auto = await backendContext({ Type: "wireguard", Implementation: "userspace", Mode: "auto" }, external, undefined, DUAL_STACK);
    const { logger, lines } = capturingLogger();
    const backend = createWireguardBackend({ ...auto, logger }, { netns: namespace, env: withoutGo });
    await backend.reconcile({ dryRun: true }).catch(() => undefined);
    const warnings = lines.filter((line) => line.level === 40 && line.msg.includes('forwards IPv6 in Mode "separate" only, not in Mode "auto"'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/NO IPv6 is forwarded/);
    expect(backend.dataPathDetails()).toEqual({ wireguardImplementation: "userspace", wireguardIpv6: "not forwarded (the userspace engine forwards IPv6 in Mode separate only)" });

    const ipv6Mode = await backendContext({ Type: "wireguard", Implementation: "userspace", Mode: "ipv6" }, external, undefined, DUAL_STACK);
    const refused = createWireguardBackend(ipv6Mode, { netns: namespace, env: withoutGo });
    await expect(refused.register()).rejects.toThrow(/Backend\.Mode "ipv6" needs a WireGuard device \(kernel or wireguard-go\), but this host runs weft's userspace engine/);
  });
});
