import { describe, expect, it } from "vitest";
import { peerArguments, reinitiateArguments } from "../../../src/kernel/wireguard-device.js";

/** The `wg set` clauses a key rotation on the device path uses: a handshake at once, and a peer configured again. */
const A = "YzD/Q79TQBYibyyyBDL4I2Ut8FT+xKXFD2HxqN5c+mc=";
const B = "RIacqa2wbtIpnZoTRhL4RhiaIJvypx7mZ9XzqrlGk1Y=";
const peer = { publicKey: A, endpoint: "192.168.77.12:51820", allowedIps: ["10.66.3.0/24"], persistentKeepaliveSeconds: 0 };
const base = ["peer", A, "endpoint", "192.168.77.12:51820", "allowed-ips", "10.66.3.0/24"];

describe("peerArguments with peers to initiate to", () => {
  it.each([
    ["not asked: as configured", peer, undefined, new Set<string>(), [...base, "persistent-keepalive", "off"]],
    ["keepalive off: switched on for the clause and off in the next, so the device ends as configured", peer, undefined, new Set([A]), [
      ...base, "persistent-keepalive", "1", "peer", A, "persistent-keepalive", "off",
    ]],
    ["the PSK stays in the peer's clause", peer, "/tmp/x/psk", new Set([A]), [
      ...base, "persistent-keepalive", "1", "preshared-key", "/tmp/x/psk", "peer", A, "persistent-keepalive", "off",
    ]],
    ["a keepalive of its own: the new peer's keepalive starts the handshake, nothing added", { ...peer, persistentKeepaliveSeconds: 25 }, undefined, new Set([A]), [
      ...base, "persistent-keepalive", "25",
    ]],
    ["another key asked for: as configured", peer, undefined, new Set([B]), [...base, "persistent-keepalive", "off"]],
  ])("%s", (_name, config, pskFile, initiate, expected) => {
    expect(peerArguments([config], pskFile, initiate)).toEqual(expected);
  });
});

describe("reinitiateArguments", () => {
  it("removes each peer and configures it again in the same call, initiating", () => {
    expect(reinitiateArguments([peer, { ...peer, publicKey: B, persistentKeepaliveSeconds: 25 }], "/tmp/x/psk")).toEqual([
      "peer", A, "remove", ...base, "persistent-keepalive", "1", "preshared-key", "/tmp/x/psk", "peer", A, "persistent-keepalive", "off",
      "peer", B, "remove", "peer", B, "endpoint", "192.168.77.12:51820", "allowed-ips", "10.66.3.0/24", "persistent-keepalive", "25", "preshared-key", "/tmp/x/psk",
    ]);
  });
});
