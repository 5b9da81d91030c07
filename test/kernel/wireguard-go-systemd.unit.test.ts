import { describe, expect, it } from "vitest";
import { WireguardDevice } from "../../src/kernel/wireguard-device.js";
import { startsAsSystemdUnit, systemdRunArguments, wireguardGoUnitName } from "../../src/kernel/wireguard-go.js";

describe("wireguard-go under systemd: a transient unit of its own", () => {
  it("only for a service (fd store) of systemd ($INVOCATION_ID) with the device in weft's namespace", () => {
    const here = new WireguardDevice("flannel-wg");
    expect(startsAsSystemdUnit(here, false, { INVOCATION_ID: "0123456789abcdef" })).toBe(false);
    expect(startsAsSystemdUnit(here, true, {})).toBe(false); // a test's fake service manager sets no INVOCATION_ID
    expect(startsAsSystemdUnit(new WireguardDevice("flannel-wg", "lab-h1"), true, { INVOCATION_ID: "0123456789abcdef" })).toBe(false);
  });

  it("runs `wireguard-go -f <device>` in weft's network namespace, logging to the journal, ahead of other units for CPU", () => {
    const args = systemdRunArguments("flannel-wg-v6", "/usr/bin/wireguard-go", 4242);
    expect(args.slice(0, 2)).toEqual(["--unit", "weft-wireguard-go-flannel-wg-v6.service"]);
    expect(args).toContain("--collect");
    expect(args).toContain("NetworkNamespacePath=/proc/4242/ns/net");
    // Ahead of the control plane for CPU (default CPUWeight is 100).
    expect(args[args.indexOf("CPUWeight=1000") - 1]).toBe("--property");
    expect(args.slice(args.indexOf("--"))).toEqual(["--", "/usr/bin/wireguard-go", "-f", "flannel-wg-v6"]);
    expect(wireguardGoUnitName("flannel-wg")).toBe("weft-wireguard-go-flannel-wg.service");
  });
});
