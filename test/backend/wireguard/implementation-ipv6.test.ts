/*
 * Which WireGuard implementation runs on a dual-stack network (EnableIPv6), decided in a test
 * namespace <p>ns (empty but for lo; this machine's kernel has no WireGuard): weft's userspace
 * engine forwards IPv6 in every Mode, so "auto" takes it after the kernel (wireguard-go on PATH
 * or not), and says why; "userspace" asked for runs without a warning, its /readyz saying how
 * IPv6 is carried.
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
  it('"auto" takes the userspace engine where the kernel has no WireGuard, in every Mode, with wireguard-go on PATH or not', async () => {
    if (kernelHasWireguard) return;
    for (const mode of ["separate", "auto", "ipv4", "ipv6"]) {
      for (const env of [withGo, withoutGo]) {
        const choice = await chooseImplementation(parseWireguardOptions({ Mode: mode }), env, namespace, true);
        expect(choice.implementation).toBe("userspace");
        expect(choice.why).toMatch(new RegExp(`has no WireGuard .*; it forwards IPv6 too \\(Mode "${mode}"\\)$`));
      }
    }
    expect((await chooseImplementation(parseWireguardOptions({}), withGo, namespace, false)).implementation).toBe("userspace");
  });

  it('"userspace" on a dual-stack network forwards IPv6 without a warning: a second interface in Mode "separate", the one interface otherwise', async () => {
    const external = { name: "ul0", address: "192.168.77.11", addressV6: "fd77::11" };
    const cases = [
      ["separate", "forwarded (Mode separate: a second interface on ListenPortV6 51821)"],
      ["auto", "forwarded (Mode auto: one interface for both families on ListenPort 51820)"],
      ["ipv6", "forwarded (Mode ipv6: one interface for both families on ListenPort 51820)"],
    ] as const;
    for (const [mode, details] of cases) {
      const context = await backendContext({ Type: "wireguard", Implementation: "userspace", Mode: mode }, external, undefined, DUAL_STACK);
      const { logger, lines } = capturingLogger();
      const backend = createWireguardBackend({ ...context, logger }, { netns: namespace, env: withoutGo });
      // Only the choice is wanted here: a dry-run reconcile makes it without opening the engine.
      await backend.reconcile({ dryRun: true }).catch(() => undefined);
      expect(lines.filter((line) => line.level === 40), mode).toEqual([]);
      expect(backend.dataPathDetails()).toEqual({ wireguardImplementation: "userspace", wireguardIpv6: details });
    }
  });

  it('"userspace" on a dual-stack host without an external IPv6 address warns once that no IPv6 is forwarded', async () => {
    const context = await backendContext({ Type: "wireguard", Implementation: "userspace" }, { name: "ul0", address: "192.168.77.11" }, undefined, DUAL_STACK);
    const { logger, lines } = capturingLogger();
    const backend = createWireguardBackend({ ...context, logger }, { netns: namespace, env: withoutGo });
    await backend.reconcile({ dryRun: true }).catch(() => undefined);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/no IPv6 address; IPv6 is not forwarded and no BackendV6Data is advertised/);
    expect(backend.dataPathDetails()).toEqual({ wireguardImplementation: "userspace", wireguardIpv6: "not forwarded (the external interface has no IPv6 address)" });
  });
});
