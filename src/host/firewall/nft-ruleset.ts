import type { Ipv4Subnet } from "../../net/ipv4.js";

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
 */

export const TABLE_FAMILY = "ip";
export const TABLE_NAME = "weft";

export interface TrafficRulesSpec {
  network: Ipv4Subnet;
  ownSubnet: Ipv4Subnet;
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
  const table = `${TABLE_FAMILY} ${TABLE_NAME}`;
  const network = spec.network.toString();
  const own = spec.ownSubnet.toString();
  const random = spec.fullyRandom === false ? "" : " fully-random";
  const lines = [`add table ${table}`, `delete table ${table}`, `table ${table} {`];
  if (spec.forwardRules) {
    lines.push(
      "  chain forward {",
      "    type filter hook forward priority filter; policy accept;",
      `    ip saddr ${network} accept`,
      `    ip daddr ${network} accept`,
      "  }",
    );
  }
  if (spec.ipMasq) {
    lines.push(
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      "    meta mark & 0x00004000 == 0x00004000 return",
      `    ip saddr ${network} ip daddr ${network} return`,
      `    ip saddr != ${network} ip daddr ${own} return`,
      `    ip saddr ${network} ip daddr != 224.0.0.0/4 masquerade${random}`,
      `    ip saddr != ${network} ip daddr ${network} masquerade${random}`,
      "  }",
    );
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** Removes the table if it exists (cleanup): `add` makes the `delete` valid either way. */
export function renderRemoval(): string {
  return `add table ${TABLE_FAMILY} ${TABLE_NAME}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n`;
}
