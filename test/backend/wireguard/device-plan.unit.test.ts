import { describe, expect, it } from "vitest";
import { devicePeerConfig, peersToReinitiate, planDevicePeers } from "../../../src/backend/wireguard/device-plan.js";
import type { WgPeerState } from "../../../src/kernel/wireguard-device.js";
import { Ipv4Subnet } from "../../../src/net/ipv4.js";

const A = "YzD/Q79TQBYibyyyBDL4I2Ut8FT+xKXFD2HxqN5c+mc=";
const B = "RIacqa2wbtIpnZoTRhL4RhiaIJvypx7mZ9XzqrlGk1Y=";
const C = "VK5bgp9RLb5f6ZxCebG3Dxwu+PmKbW02o7MqdZ9udhc=";

const wanted = (publicKey: string, third: number, keepalive = 0) => ({
  publicKey, endpoint: `192.168.77.${third}:51820`, allowedIps: [`10.66.${third}.0/24`], persistentKeepaliveSeconds: keepalive,
});
const held = (publicKey: string, third: number, changes: Partial<WgPeerState> = {}): WgPeerState => ({
  publicKey, presharedKey: "none", endpoint: `192.168.77.${third}:51820`, allowedIps: [`10.66.${third}.0/24`],
  latestHandshakeSeconds: 0, rxBytes: 0, txBytes: 0, persistentKeepaliveSeconds: 0, ...changes,
});
const noPsk = { presharedKey: false, removeUnknown: true };

describe("planDevicePeers", () => {
  it.each([
    ["in sync: nothing", [wanted(A, 2)], [held(A, 2)], noPsk, { set: [], remove: [], initiate: [] }],
    ["a new lease: set", [wanted(A, 2), wanted(B, 3)], [held(A, 2)], noPsk, { set: [wanted(B, 3)], remove: [], initiate: [] }],
    ["a deleted lease: removed", [wanted(A, 2)], [held(A, 2), held(B, 3)], noPsk, { set: [], remove: [B], initiate: [] }],
    ["before the first snapshot nothing unknown goes", [], [held(A, 2)], { ...noPsk, removeUnknown: false }, { set: [], remove: [], initiate: [] }],
    ["a key change: the new key set, the old removed, the new one initiated to", [wanted(C, 2)], [held(A, 2)], noPsk, { set: [wanted(C, 2)], remove: [A], initiate: [C] }],
    ["a key change before the first snapshot: the new key set and initiated to, the old kept", [wanted(C, 2)], [held(A, 2)], { ...noPsk, removeUnknown: false }, { set: [wanted(C, 2)], remove: [], initiate: [C] }],
    ["a key change with our PSK: initiated to as well", [wanted(C, 2)], [held(A, 2, { presharedKey: "ours" })], { ...noPsk, presharedKey: true }, { set: [wanted(C, 2)], remove: [A], initiate: [C] }],
    ["a new lease on a subnet nobody held: set, not initiated to", [wanted(C, 4)], [held(A, 2)], noPsk, { set: [wanted(C, 4)], remove: [A], initiate: [] }],
    ["a new endpoint: set", [wanted(A, 2)], [held(A, 2, { endpoint: "192.168.77.99:51820" })], noPsk, { set: [wanted(A, 2)], remove: [], initiate: [] }],
    ["no endpoint on the device (removed by hand): set", [wanted(A, 2)], [held(A, 2, { endpoint: undefined })], noPsk, { set: [wanted(A, 2)], remove: [], initiate: [] }],
    ["wrong allowed IPs: set", [wanted(A, 2)], [held(A, 2, { allowedIps: ["10.66.2.0/24", "10.66.9.0/24"] })], noPsk, { set: [wanted(A, 2)], remove: [], initiate: [] }],
    ["allowed IPs in another order are the same", [{ ...wanted(A, 2), allowedIps: ["10.66.2.0/24", "10.66.9.0/24"] }], [held(A, 2, { allowedIps: ["10.66.9.0/24", "10.66.2.0/24"] })], noPsk, { set: [], remove: [], initiate: [] }],
    ["a keepalive change: set", [wanted(A, 2, 25)], [held(A, 2)], noPsk, { set: [wanted(A, 2, 25)], remove: [], initiate: [] }],
    ["our PSK missing on the device: set", [wanted(A, 2)], [held(A, 2)], { ...noPsk, presharedKey: true }, { set: [wanted(A, 2)], remove: [], initiate: [] }],
    ["another PSK on the device: set", [wanted(A, 2)], [held(A, 2, { presharedKey: "other" })], { ...noPsk, presharedKey: true }, { set: [wanted(A, 2)], remove: [], initiate: [] }],
    ["our PSK there: nothing", [wanted(A, 2)], [held(A, 2, { presharedKey: "ours" })], { ...noPsk, presharedKey: true }, { set: [], remove: [], initiate: [] }],
    ["a PSK that must go: removed, then set", [wanted(A, 2)], [held(A, 2, { presharedKey: "other" })], noPsk, { set: [wanted(A, 2)], remove: [A], initiate: [] }],
    ["two leases with one key: the first wins", [wanted(A, 2), wanted(A, 3)], [], noPsk, { set: [wanted(A, 2)], remove: [], initiate: [] }],
  ])("%s", (_name, desired, actual, options, expected) => {
    expect(planDevicePeers(desired, actual, options)).toEqual(expected);
  });

  it("initiates to a rotated key on the one device of both families too (IPv6 subnet taken over)", () => {
    const both = { ...wanted(C, 2), allowedIps: ["10.66.2.0/24", "fd66:0:0:2::/64"] };
    const was = held(A, 2, { allowedIps: ["fd66:0:0:2::/64", "10.66.2.0/24"] });
    expect(planDevicePeers([both], [was], noPsk)).toEqual({ set: [both], remove: [A], initiate: [C] });
  });

  it("makes a lease's peer into flanneld's peer: endpoint PublicIP:Port, AllowedIPs the subnet", () => {
    const peer = { lease: "/k", v4: { subnet: Ipv4Subnet.parse("10.66.3.0/24"), address: "192.168.77.13", publicKey: A, port: 51999 } };
    expect(devicePeerConfig(peer, { families: "ipv4", listenPort: 51820 }, 25)).toEqual({ publicKey: A, endpoint: "192.168.77.13:51999", allowedIps: ["10.66.3.0/24"], persistentKeepaliveSeconds: 25 });
    expect(devicePeerConfig({ lease: "/k", v4: { ...peer.v4, port: undefined } }, { families: "ipv4", listenPort: 51820 }, 0)?.endpoint).toBe("192.168.77.13:51820");
  });
});

describe("peersToReinitiate (a second after a rotation)", () => {
  const at = 1_800_000_000;
  it.each([
    ["a session then, no handshake since: initiated to", [held(A, 2, { latestHandshakeSeconds: at - 30 })], [held(A, 2, { latestHandshakeSeconds: at - 30 })], [A]],
    ["a handshake since the rotation: left alone", [held(A, 2, { latestHandshakeSeconds: at - 30 })], [held(A, 2, { latestHandshakeSeconds: at + 1 })], []],
    ["never handshaken: no session to keep, left alone", [held(A, 2)], [held(A, 2)], []],
    ["a handshake older than REJECT_AFTER_TIME: no session then, left alone", [held(A, 2, { latestHandshakeSeconds: at - 180 })], [held(A, 2, { latestHandshakeSeconds: at - 180 })], []],
    ["gone from the device since: left to the peer plan", [held(A, 2, { latestHandshakeSeconds: at - 30 })], [], []],
    ["not on the device then: left alone", [], [held(A, 2, { latestHandshakeSeconds: at - 30 })], []],
  ])("%s", (_name, before, now, expected) => {
    expect(peersToReinitiate(before, now, [wanted(A, 2)], at).map((peer) => peer.publicKey)).toEqual(expected);
  });

  it("takes the desired configuration (a lease no longer wanted is not initiated to)", () => {
    const before = [held(A, 2, { latestHandshakeSeconds: at - 5 }), held(B, 3, { latestHandshakeSeconds: at - 5 })];
    expect(peersToReinitiate(before, before, [wanted(B, 3, 25)], at)).toEqual([wanted(B, 3, 25)]);
  });
});
