import { describe, expect, it } from "vitest";
import { formatWireguardBackendData, parseWireguardBackendData } from "../../../src/backend/wireguard/backend-data.js";
import { devicePeerConfig, selectEndpointFamily, type DeviceCarriage, type OwnUnderlay } from "../../../src/backend/wireguard/device-plan.js";
import { wireguardDevicePeer, type WireguardDevicePeer } from "../../../src/backend/wireguard/peer-route.js";
import { isRefusal } from "../../../src/backend/peer-table.js";
import { lease } from "../kernel-fixtures.js";

const A = "YzD/Q79TQBYibyyyBDL4I2Ut8FT+xKXFD2HxqN5c+mc=";
const B = "RIacqa2wbtIpnZoTRhL4RhiaIJvypx7mZ9XzqrlGk1Y=";
const KEY = "/coreos.com/network/subnets/10.66.3.0-24&fd66:0:0:3::-64";

describe("BackendV6Data", () => {
  it("is written as flanneld writes it: PublicKey then Port", () => {
    expect(JSON.stringify(formatWireguardBackendData({ publicKey: A, port: 51821 }))).toBe(`{"PublicKey":"${A}","Port":51821}`);
  });

  it.each([
    ["flanneld's", { PublicKey: A, Port: 51821 }, { publicKey: A, port: 51821 }],
    ["without Port (older flanneld)", { PublicKey: A }, { publicKey: A, port: undefined }],
    ["Port 0 (Go's zero value)", { PublicKey: A, Port: 0 }, { publicKey: A, port: undefined }],
  ])("parses %s", (_name, value, expected) => {
    expect(parseWireguardBackendData(value, KEY, "BackendV6Data")).toEqual(expected);
  });

  it.each([
    ["not an object", "x", /: BackendV6Data "x" is not an object with PublicKey$/],
    ["absent", undefined, /: BackendV6Data \(absent\) is not an object with PublicKey$/],
    ["no PublicKey", { Port: 51821 }, /: BackendV6Data\.PublicKey \(absent\) is not a string$/],
    ["a bad key", { PublicKey: "abc", Port: 51821 }, /: BackendV6Data\.PublicKey: not a WireGuard key/],
    ["a bad Port", { PublicKey: A, Port: 70_000 }, /: BackendV6Data\.Port 70000 is not a UDP port$/],
  ])("names the lease key and the field for %s", (_name, value, message) => {
    expect(() => parseWireguardBackendData(value, KEY, "BackendV6Data")).toThrow(new RegExp(`^${KEY.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}${message.source}`));
  });
});

describe("wireguardDevicePeer (a lease as the device path serves it)", () => {
  const V6_DATA = { PublicKey: A, Port: 51821 };
  /** `v6` "none": no BackendV6Data in the lease. */
  const attrs = (v6: unknown, publicIPv6: string | null = "fd77::13") => ({
    publicIP: "192.168.77.13", publicIPv6, backendType: "wireguard", backendData: { PublicKey: A, Port: 51820 }, ...(v6 === "none" ? {} : { backendV6Data: v6 }),
  });
  const classify = wireguardDevicePeer(true);

  it("takes both halves of a dual-stack lease, PublicIPv6 canonical", () => {
    const peer = classify(lease("10.66.3.0/24", attrs({ PublicKey: A, Port: 51821 }, "FD77:0:0::13"), "fd66:0:0:3::/64")) as WireguardDevicePeer;
    expect(peer.v4).toEqual({ subnet: expect.anything(), address: "192.168.77.13", publicKey: A, port: 51820 });
    expect(peer.v6?.subnet.toString()).toBe("fd66:0:0:3::/64");
    expect(peer.v6).toMatchObject({ address: "fd77::13", publicKey: A, port: 51821 });
  });

  it("serves a single-stack lease, and one without BackendV6Data (a userspace host's), over IPv4 only", () => {
    expect((classify(lease("10.66.3.0/24", attrs(V6_DATA))) as WireguardDevicePeer).v6).toBeUndefined();
    expect((classify(lease("10.66.3.0/24", attrs("none"), "fd66:0:0:3::/64")) as WireguardDevicePeer).v6).toBeUndefined();
    expect((classify(lease("10.66.3.0/24", attrs(null), "fd66:0:0:3::/64")) as WireguardDevicePeer).v6).toBeUndefined();
    expect((wireguardDevicePeer(false)(lease("10.66.3.0/24", attrs(V6_DATA), "fd66:0:0:3::/64")) as WireguardDevicePeer).v6).toBeUndefined();
  });

  it.each([
    ["no PublicIPv6", attrs(V6_DATA, null), /has the IPv6 subnet fd66:0:0:3::\/64 but no PublicIPv6/],
    ["a link-local PublicIPv6", attrs(V6_DATA, "fe80::13"), /a link-local address/],
    ["a bad BackendV6Data", attrs({ PublicKey: "abc" }), /BackendV6Data\.PublicKey: not a WireGuard key/],
  ])("refuses a dual-stack lease with %s as a whole (as the kernel backends do)", (_name, leaseAttrs, message) => {
    const verdict = classify(lease("10.66.3.0/24", leaseAttrs, "fd66:0:0:3::/64"));
    expect(isRefusal(verdict)).toBe(true);
    expect(isRefusal(verdict) && verdict.refused).toMatch(message);
  });
});

describe("devicePeerConfig on the IPv6 device and on one device for both families", () => {
  const peer = (v4Port: number | undefined, v6Port: number | undefined, publicIP = "192.168.77.13", publicIPv6 = "fd77::13"): WireguardDevicePeer => {
    const classified = wireguardDevicePeer(true)(lease("10.66.3.0/24", {
      publicIP, publicIPv6, backendType: "wireguard", backendData: { PublicKey: A, Port: v4Port }, backendV6Data: { PublicKey: B, Port: v6Port },
    }, "fd66:0:0:3::/64"));
    if (isRefusal(classified)) throw new Error(classified.refused);
    return classified;
  };
  const privateUnderlay: OwnUnderlay = { ipv4: "192.168.77.11", ipv6: "fd77::11" };
  const publicUnderlay: OwnUnderlay = { ipv4: "198.51.100.11", ipv6: "2001:db8::11" };
  const both = (endpoint: "ipv4" | "ipv6" | "auto", own = privateUnderlay): DeviceCarriage => ({ families: "both", listenPort: 51820, endpoint, own });

  it.each<[string, WireguardDevicePeer, DeviceCarriage, { publicKey: string; endpoint: string; allowedIps: string[] } | undefined]>([
    ["separate, flannel-wg-v6: BackendV6Data's key and port", peer(51820, 51821), { families: "ipv6", listenPort: 51821 },
      { publicKey: B, endpoint: "[fd77::13]:51821", allowedIps: ["fd66:0:0:3::/64"] }],
    ["separate, flannel-wg-v6: no Port, our ListenPortV6", peer(51820, undefined), { families: "ipv6", listenPort: 51999 },
      { publicKey: B, endpoint: "[fd77::13]:51999", allowedIps: ["fd66:0:0:3::/64"] }],
    ["separate, flannel-wg-v6: a single-stack peer is none of its business", { lease: "/k", v4: peer(51820, 51821).v4 }, { families: "ipv6", listenPort: 51821 }, undefined],
    ["separate, flannel-wg: the IPv4 half only", peer(51820, 51821), { families: "ipv4", listenPort: 51820 },
      { publicKey: A, endpoint: "192.168.77.13:51820", allowedIps: ["10.66.3.0/24"] }],
    ['Mode "ipv4": both subnets, the IPv4 endpoint', peer(51820, 51821), both("ipv4"),
      { publicKey: A, endpoint: "192.168.77.13:51820", allowedIps: ["10.66.3.0/24", "fd66:0:0:3::/64"] }],
    // flanneld on one device advertises ListenPortV6 (51821) in BackendV6Data but listens on ListenPort: BackendData's port is the one.
    ['Mode "ipv6": the IPv6 endpoint at BackendData\'s port (flanneld\'s one device)', peer(51820, 51821), both("ipv6"),
      { publicKey: B, endpoint: "[fd77::13]:51820", allowedIps: ["10.66.3.0/24", "fd66:0:0:3::/64"] }],
    ['Mode "ipv6": a single-stack peer over IPv4', { lease: "/k", v4: peer(51820, 51821).v4 }, both("ipv6"),
      { publicKey: A, endpoint: "192.168.77.13:51820", allowedIps: ["10.66.3.0/24"] }],
    ['Mode "auto", private underlay: IPv4', peer(51820, 51820), both("auto"),
      { publicKey: A, endpoint: "192.168.77.13:51820", allowedIps: ["10.66.3.0/24", "fd66:0:0:3::/64"] }],
    ['Mode "auto", peer with public IPv4: IPv4', peer(51820, 51820, "198.51.100.13", "2001:db8::13"), both("auto", publicUnderlay),
      { publicKey: A, endpoint: "198.51.100.13:51820", allowedIps: ["10.66.3.0/24", "fd66:0:0:3::/64"] }],
    ['Mode "auto", private IPv4 but public IPv6 on both ends: IPv6', peer(51820, 51820, "10.1.2.13", "2001:db8::13"), both("auto", publicUnderlay),
      { publicKey: B, endpoint: "[2001:db8::13]:51820", allowedIps: ["10.66.3.0/24", "fd66:0:0:3::/64"] }],
  ])("%s", (_name, input, carriage, expected) => {
    const config = devicePeerConfig(input, carriage, 25);
    expect(config).toEqual(expected && { ...expected, persistentKeepaliveSeconds: 25 });
  });

  it("selects the endpoint family as flanneld's selectMode does", () => {
    expect(selectEndpointFamily(peer(1, 1, "172.16.0.1", "2001:db8::1"), publicUnderlay)).toBe("ipv6");
    expect(selectEndpointFamily(peer(1, 1, "172.32.0.1", "2001:db8::1"), publicUnderlay)).toBe("ipv4");
    expect(selectEndpointFamily(peer(1, 1, "10.0.0.1", "fd00::1"), publicUnderlay)).toBe("ipv4");
    expect(selectEndpointFamily(peer(1, 1, "10.0.0.1", "2001:db8::1"), { ipv4: "10.0.0.2", ipv6: "fd00::2" })).toBe("ipv4");
    expect(selectEndpointFamily(peer(1, 1, "10.0.0.1", "2001:db8::1"), { ipv4: "10.0.0.2", ipv6: undefined })).toBe("ipv4");
  });
});
