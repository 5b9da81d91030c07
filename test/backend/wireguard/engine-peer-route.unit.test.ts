import { describe, expect, it } from "vitest";
import { isRefusal } from "../../../src/backend/peer-table.js";
import { wireguardEnginePeerRoute } from "../../../src/backend/wireguard/peer-route.js";
import type { WireguardMode } from "../../../src/backend/wireguard/options.js";
import type { PeerRoute } from "../../../src/engine/engine.js";
import { lease } from "../kernel-fixtures.js";

/** The userspace engine's route of a wireguard lease, by Mode (table-driven, no root). */
const KEY = "YzD/Q79TQBYibyyyBDL4I2Ut8FT+xKXFD2HxqN5c+mc=";
const PORTS = { listenPort: 51820, listenPortV6: 51821 };
const PRIVATE = { ipv4: "192.168.77.11", ipv6: "fd77::11" };
const PUBLIC = { ipv4: "198.51.100.11", ipv6: "2001:db8::11" };

const dualStack = (publicIP: string, publicIPv6: string, v6Port?: number) =>
  lease("10.66.3.0/24", {
    publicIP, publicIPv6, backendType: "wireguard", backendData: { PublicKey: KEY, Port: 51820 },
    backendV6Data: v6Port === undefined ? { PublicKey: KEY } : { PublicKey: KEY, Port: v6Port },
  }, "fd66:0:0:3::/64");
const singleStack = lease("10.66.4.0/24", { publicIP: "192.168.77.14", publicIPv6: null, backendType: "wireguard", backendData: { PublicKey: KEY, Port: 51820 } });

const routeOf = (mode: WireguardMode, own: typeof PRIVATE, input: ReturnType<typeof lease>): PeerRoute => {
  const route = wireguardEnginePeerRoute(PORTS, true, { mode, own })(input);
  if (isRefusal(route)) throw new Error(route.refused);
  return route;
};
const shape = (route: PeerRoute) => ({
  endpoint: route.endpointIPv6 ? `[${route.ipv6?.publicIPv6}]:${route.port}` : `${route.publicIP}:${route.port}`,
  subnets: [route.subnet.toString(), ...(route.ipv6 ? [route.ipv6.subnet.toString()] : [])],
  v6Peer: route.ipv6?.publicKey === undefined ? undefined : `[${route.ipv6.publicIPv6}]:${route.ipv6.port}`,
});

describe("wireguardEnginePeerRoute", () => {
  it.each([
    ["separate: the IPv6 half is the IPv6 interface's peer at BackendV6Data's port", "separate", PRIVATE, dualStack("192.168.77.13", "fd77::13", 51821),
      { endpoint: "192.168.77.13:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: "[fd77::13]:51821" }],
    ["separate: our ListenPortV6 when BackendV6Data has no Port", "separate", PRIVATE, dualStack("192.168.77.13", "fd77::13"),
      { endpoint: "192.168.77.13:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: "[fd77::13]:51821" }],
    ["ipv4: one peer, both subnets, PublicIP", "ipv4", PRIVATE, dualStack("192.168.77.13", "fd77::13", 51821),
      { endpoint: "192.168.77.13:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: undefined }],
    ["ipv6: [PublicIPv6] on BackendData's port (flanneld's BackendV6Data.Port is not the one device's)", "ipv6", PRIVATE, dualStack("192.168.77.13", "fd77::13", 51821),
      { endpoint: "[fd77::13]:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: undefined }],
    ["ipv6: a single-stack peer over IPv4", "ipv6", PRIVATE, singleStack, { endpoint: "192.168.77.14:51820", subnets: ["10.66.4.0/24"], v6Peer: undefined }],
    ["auto: private addresses, IPv4 (selectMode)", "auto", PRIVATE, dualStack("192.168.77.13", "fd77::13", 51821),
      { endpoint: "192.168.77.13:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: undefined }],
    ["auto: a private PublicIP and public IPv6 on both ends, IPv6 (selectMode)", "auto", PUBLIC, dualStack("192.168.77.13", "2001:db8::13", 51821),
      { endpoint: "[2001:db8::13]:51820", subnets: ["10.66.3.0/24", "fd66:0:0:3::/64"], v6Peer: undefined }],
  ] as const)("%s", (_name, mode, own, input, expected) => {
    expect(shape(routeOf(mode, own, input))).toEqual(expected);
  });
});
