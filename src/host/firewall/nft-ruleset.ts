import { subnetFamily, type IpFamily, type IpSubnet } from "../../net/ip-subnet.js";

/**
 * weft's nftables rules, all in its own table `ip weft` so they never mix with Docker's,
 * iptables-nft's or anyone else's, and can be replaced or removed as one unit.
 *
 * Forward chain (`forwardRules`, flannel's FLANNEL-FWD, flannel-compat §8.1): accept forwarded packets
 * from or to the Network. An nftables accept only ends *this* table's chain; a DROP policy in
 * another table (Docker's iptables FORWARD) still drops, which filter-forward.ts handles there.
 *
 * Masquerade chain (`ipMasq`, flannel-compat §8.2), first match wins:
 *   1. packets marked 0x4000/0x4000 (kube-proxy's masquerade mark)   → untouched
 *   2. Network → Network (container to container, any host)          → untouched
 *   3. outside → own subnet (e.g. published ports into containers)   → untouched
 *   4. Network → outside, except multicast 224.0.0.0/4               → masquerade (host address)
 *   5. outside/host → other hosts' subnets                           → masquerade, so replies
 *      come back through the overlay instead of the underlay default route.
 * This is flannel's iptables rule set (v0.20.2/HEAD); HEAD's nftables variant of rule 3 would
 * also swallow rule 5 and is not copied.
 *
 * A dual-stack network gets the same two chains for IPv6 in `ip6 weft` (flannel's `ip6
 * flannel-ipv6`), from the IPv6Network and the own IPv6 subnet, with ff00::/8 as the multicast
 * range (flannel-compat §8.2).
 */

export const TABLE_NAME = "weft";

/** The nftables family of weft's table for one address family: `ip weft`, `ip6 weft`. */
export function tableFamily(family: IpFamily): "ip" | "ip6" {
  return family === 4 ? "ip" : "ip6";
}

const MULTICAST: Record<IpFamily, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };

export interface TrafficRulesSpec {
  /** The Network of one family (IPv4 Network, or IPv6Network); ownSubnet of the same family. */
  network: IpSubnet;
  ownSubnet: IpSubnet;
  ipMasq: boolean;
  forwardRules: boolean;
  /** `fully-random` port mapping (flannel's --random-fully); on unless disabled. */
  fullyRandom?: boolean;
}

/**
 * One `nft -f` script that replaces the table in a single transaction: creating it first
 * makes the delete valid when it does not exist yet; nothing is ever half-applied.
 */
export function renderRuleset(spec: TrafficRulesSpec): string {
  const family = subnetFamily(spec.network);
  if (subnetFamily(spec.ownSubnet) !== family) throw new Error(`traffic rules: own subnet ${spec.ownSubnet} is not of the family of Network ${spec.network}`);
  const ip = tableFamily(family); // also the address match keyword: `ip saddr`, `ip6 saddr`
  const table = `${ip} ${TABLE_NAME}`;
  const network = spec.network.toString();
  const own = spec.ownSubnet.toString();
  const random = spec.fullyRandom === false ? "" : " fully-random";
  const lines = [`add table ${table}`, `delete table ${table}`, `table ${table} {`];
  if (spec.forwardRules) {
    lines.push(
      "  chain forward {",
      "    type filter hook forward priority filter; policy accept;",
      `    ${ip} saddr ${network} accept`,
      `    ${ip} daddr ${network} accept`,
      "  }",
    );
  }
  if (spec.ipMasq) {
    lines.push(
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      "    meta mark & 0x00004000 == 0x00004000 return",
      `    ${ip} saddr ${network} ${ip} daddr ${network} return`,
      `    ${ip} saddr != ${network} ${ip} daddr ${own} return`,
      `    ${ip} saddr ${network} ${ip} daddr != ${MULTICAST[family]} masquerade${random}`,
      `    ${ip} saddr != ${network} ${ip} daddr ${network} masquerade${random}`,
      "  }",
    );
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** Removes the family's table if it exists (cleanup): `add` makes the `delete` valid either way. */
export function renderRemoval(family: IpFamily = 4): string {
  const table = `${tableFamily(family)} ${TABLE_NAME}`;
  return `add table ${table}\ndelete table ${table}\n`;
}
