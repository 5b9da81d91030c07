import { describe, expect, it } from "vitest";
import { PeerTable, type Refusal } from "../../src/backend/peer-table.js";
import { createUdpBackend, udpPeerRoute } from "../../src/backend/udp/udp-backend.js";
import { createWireguardBackend } from "../../src/backend/wireguard/wireguard-backend.js";
import { vxlanBackend } from "../../src/backend/vxlan/vxlan-backend.js";
import { validateNetworkConfigText } from "../../src/commands/config.js";
import { subnetKey } from "../../src/lease/subnet-key.js";
import type { Lease } from "../../src/lease/types.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { backendContext, capturingLogger } from "./kernel-fixtures.js";

/** IPv6-only networks (EnableIPv4: false): which backends take them, and how IPv6-only leases are told apart. */
const IPV6_ONLY = { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd66::/48" };
const external = { name: "ul0", address: "192.168.77.11", addressV6: "fd77::11" };

/** An IPv6-only lease as flanneld writes it: key 0.0.0.0-0&…, PublicIP 0.0.0.0. */
function v6Lease(subnet: string, publicIPv6: string): Lease {
  const ipv6Subnet = Ipv6Subnet.parse(subnet);
  return {
    ipv6Subnet,
    attrs: { publicIP: "0.0.0.0", publicIPv6, backendType: "host-gw" },
    key: subnetKey("/coreos.com/network/subnets/", { ipv6Subnet }),
    reservation: false,
  };
}

describe("userspace backends refuse an IPv6-only network, naming the backend and EnableIPv4", () => {
  it.each([
    ["udp", { Type: "udp" }, (context: Awaited<ReturnType<typeof backendContext>>) => createUdpBackend(context)],
    ["wireguard", { Type: "wireguard" }, (context: Awaited<ReturnType<typeof backendContext>>) => createWireguardBackend(context)],
    ["userspace vxlan", { Type: "vxlan", Userspace: true }, (context: Awaited<ReturnType<typeof backendContext>>) => vxlanBackend.create(context)],
  ])("%s: at start and at `weft config set`", async (name, backend, create) => {
    const context = await backendContext(backend, external, undefined, IPV6_ONLY);
    const message = new RegExp(`^${name}: the network is IPv6-only \\(EnableIPv4: false\\), and the ${name} backend always carries IPv4`);
    expect(() => create(context)).toThrow(message);
    expect(() => validateNetworkConfigText(JSON.stringify({ ...IPV6_ONLY, Backend: backend }))).toThrow(message);
  });

  it("the kernel vxlan and host-gw backends take it", () => {
    for (const Type of ["vxlan", "host-gw"]) {
      expect(validateNetworkConfigText(JSON.stringify({ ...IPV6_ONLY, Backend: { Type } })).ipv4).toBeUndefined();
    }
  });

  it("an IPv6-only peer lease is refused by the IPv4-only udp data path of a mixed network", () => {
    const refusal = udpPeerRoute(v6Lease("fd66:0:0:5::/64", "fd77::15")) as Refusal;
    expect(refusal.refused).toBe("lease /coreos.com/network/subnets/0.0.0.0-0&fd66:0:0:5::-64 is IPv6-only (no IPv4 subnet), and the udp backend carries IPv4");
  });
});

describe("PeerTable in an IPv6-only network: hosts known by PublicIPv6", () => {
  const { logger, lines } = capturingLogger();
  const table = new PeerTable<Lease>({ backendType: "host-gw", ownPublicIP: "fd77::11", logger, classify: (lease) => lease });
  const own = v6Lease("fd66:0:0:1::/64", "fd77::11");

  it("serves other IPv6-only hosts, never one carrying our PublicIPv6, and never our own subnet", () => {
    table.setOwnLease(own, undefined);
    const changes = table.apply(
      [
        { kind: "added", lease: v6Lease("fd66:0:0:2::/64", "fd77::12") },
        // flanneld hosts all say PublicIP 0.0.0.0: that alone makes nobody "us".
        { kind: "added", lease: v6Lease("fd66:0:0:3::/64", "fd77::13") },
        { kind: "added", lease: v6Lease("fd66:0:0:9::/64", "FD77::11") },
        { kind: "added", lease: { ...own, key: `${own.key}-copy` } },
      ],
      undefined,
    );
    expect(changes.filter((change) => change.kind === "accepted").map((change) => change.peer.ipv6Subnet?.toString())).toEqual(["fd66:0:0:2::/64", "fd66:0:0:3::/64"]);
    expect(table.refusedReasons().join("\n")).toMatch(/0\.0\.0\.0-0&fd66:0:0:9::-64 advertises this host's own PublicIP fd77::11/);
    expect(lines.some((line) => line.msg.startsWith("fd66:0:0:9::/64: lease"))).toBe(true);
  });
});
