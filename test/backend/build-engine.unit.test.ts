import { describe, expect, it } from "vitest";
import { buildEngineOf } from "../../src/backend/build-engine.js";
import type { NetworkConfig } from "../../src/config/network-config.js";

function config(type: string, options: Record<string, unknown> = {}): NetworkConfig {
  return { backend: { type, options } } as unknown as NetworkConfig;
}

describe("weft_build_info's engine label", () => {
  it("follows the backend type where the config decides", () => {
    expect(buildEngineOf(config("alloc"))).toBe("none");
    expect(buildEngineOf(config("udp"))).toBe("userspace");
    expect(buildEngineOf(config("vxlan", { Userspace: true }))).toBe("userspace");
    expect(buildEngineOf(config("vxlan"))).toBe("kernel");
    expect(buildEngineOf(config("host-gw"))).toBe("kernel");
  });

  it("says which WireGuard implementation registration chose, and nothing before", () => {
    expect(buildEngineOf(config("wireguard"))).toBe("");
    expect(buildEngineOf(config("wireguard"), { wireguardImplementation: "userspace" })).toBe("userspace");
    expect(buildEngineOf(config("wireguard"), { wireguardImplementation: "wireguard-go" })).toBe("wireguard-go");
    expect(buildEngineOf(config("wireguard"), { wireguardImplementation: "kernel" })).toBe("kernel");
  });
});
