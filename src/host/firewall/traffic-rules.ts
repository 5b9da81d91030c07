import type { Logger } from "pino";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import type { Ipv6Subnet } from "../../net/ipv6.js";
import type { IpFamily, IpSubnet } from "../../net/ip-subnet.js";
import { FilterForward, type FilterForwardChange } from "./filter-forward.js";
import { legacyFilterTableExists } from "./iptables-filter-table.js";
import { nftRunner, type NftRunner } from "./nft.js";
import { TABLE_NAME, renderRemoval, renderRuleset, tableFamily } from "./nft-ruleset.js";

export interface TrafficRulesDesired {
  /** The Network and the own IPv4 subnet; both absent in an IPv6-only network, whose IPv4 rules (any left) are removed. */
  network?: Ipv4Subnet;
  ownSubnet?: Ipv4Subnet;
  ipMasq: boolean;
  forwardRules: boolean;
  /**
   * A dual-stack network: the IPv6Network and the own lease's IPv6 subnet. The same rules are
   * then kept for IPv6 in `ip6 weft` (and WEFT-FWD in the ip6tables filter table); without it
   * any IPv6 rules left from an earlier dual-stack run are removed.
   */
  ipv6?: { network: Ipv6Subnet; ownSubnet: Ipv6Subnet };
}

/** One address family's share: its table, its WEFT-FWD, and what was installed. */
interface FamilyRules {
  family: IpFamily;
  filterForward: FilterForward;
  /** `nft list` of the table right after apply(): what verify() compares against. */
  installed: string | undefined;
}

/**
 * weft's masquerade and forward-accept rules (flannel-compat §8) in its own nftables tables
 * (`ip weft`, and `ip6 weft` on a dual-stack network), replaced atomically by apply(),
 * re-checked by verify() (the daemon calls it on nftables events, ruleset-events.ts, and every
 * --iptables-resync seconds as the backstop) and removed by
 * remove() (`weft cleanup`). Daemon shutdown leaves them, as flannel.
 * With forwardRules, also the WEFT-FWD chain in the iptables (ip6tables) filter table where
 * that table drops forwarded traffic (Docker hosts; see filter-forward.ts).
 */
export class TrafficRules {
  private readonly nft: NftRunner;
  private readonly fullyRandom: boolean;
  private readonly families: Record<IpFamily, FamilyRules>;
  private desired: TrafficRulesDesired | undefined;
  private readonly netns: string | undefined;

  constructor(
    private readonly logger: Logger,
    options: { netns?: string; fullyRandom?: boolean } = {},
  ) {
    this.netns = options.netns;
    this.nft = nftRunner(options.netns);
    const family = (f: IpFamily): FamilyRules => ({ family: f, filterForward: new FilterForward(options.netns, undefined, f), installed: undefined });
    this.families = { 4: family(4), 6: family(6) };
    this.fullyRandom = options.fullyRandom ?? true;
  }

  async apply(desired: TrafficRulesDesired): Promise<void> {
    this.desired = desired;
    await this.applyFamily(this.families[4], desired, ipv4Subnets(desired));
    await this.applyFamily(this.families[6], desired, desired.ipv6);
  }

  /** Re-applies the rules of a family whose table is missing or differs from what apply() installed. */
  async verify(): Promise<{ repaired: boolean }> {
    const desired = this.desired;
    if (!desired) return { repaired: false };
    const ipv4 = ipv4Subnets(desired);
    const v4 = ipv4 ? await this.verifyFamily(this.families[4], desired, ipv4) : false;
    const v6 = desired.ipv6 ? await this.verifyFamily(this.families[6], desired, desired.ipv6) : false;
    return { repaired: v4 || v6 };
  }

  /**
   * Whether changes to the installed rules could go unseen by `nft monitor`: WEFT-FWD is also
   * kept in an iptables-legacy filter table (a Docker on iptables-legacy), whose changes are
   * not nf_tables events. Then only the periodic verify() finds them.
   */
  async partlyOutsideNftables(): Promise<boolean> {
    const desired = this.desired;
    if (!desired?.forwardRules) return false;
    const families: IpFamily[] = desired.ipv6 ? [4, 6] : [4];
    for (const family of families) if (await legacyFilterTableExists(this.netns, family)) return true;
    return false;
  }

  /** Deletes weft's tables and weft's WEFT-FWD rules of both families (and nothing else); fine when they do not exist. */
  async remove(): Promise<void> {
    this.desired = undefined;
    for (const rules of Object.values(this.families)) {
      await this.nft.apply(renderRemoval(rules.family));
      rules.installed = undefined;
      this.logChanges(rules, await rules.filterForward.remove(), "removed");
    }
  }

  /** `subnets` undefined: the family is not part of the network, so its rules go. */
  private async applyFamily(rules: FamilyRules, desired: TrafficRulesDesired, subnets: { network: IpSubnet; ownSubnet: IpSubnet } | undefined): Promise<void> {
    const table = `${tableFamily(rules.family)} ${TABLE_NAME}`;
    if (!subnets || (!desired.ipMasq && !desired.forwardRules)) {
      await this.nft.apply(renderRemoval(rules.family));
      rules.installed = undefined;
      await this.syncFilterForward(rules, subnets && desired.forwardRules ? subnets.network : undefined, "installed");
      return;
    }
    await this.nft.apply(renderRuleset({ ...subnets, ipMasq: desired.ipMasq, forwardRules: desired.forwardRules, fullyRandom: this.fullyRandom }));
    rules.installed = await this.nft.listTable(tableFamily(rules.family), TABLE_NAME);
    this.logger.info({ table, network: subnets.network.toString(), ipMasq: desired.ipMasq, forwardRules: desired.forwardRules }, "installed traffic rules");
    await this.syncFilterForward(rules, desired.forwardRules ? subnets.network : undefined, "installed");
  }

  private async verifyFamily(rules: FamilyRules, desired: TrafficRulesDesired, subnets: { network: IpSubnet; ownSubnet: IpSubnet }): Promise<boolean> {
    const table = `${tableFamily(rules.family)} ${TABLE_NAME}`;
    const current = await this.nft.listTable(tableFamily(rules.family), TABLE_NAME);
    const wanted = desired.ipMasq || desired.forwardRules ? rules.installed : undefined;
    if (current === wanted) return this.syncFilterForward(rules, desired.forwardRules ? subnets.network : undefined, "repaired");
    this.logger.warn({ table }, "traffic rules were changed or removed by someone else; re-installing");
    await this.applyFamily(rules, desired, subnets);
    return true;
  }

  /**
   * Brings the family's WEFT-FWD in line (accepting `network`, or removed when undefined); true
   * when something changed. A failure is logged, not thrown: a problem in Docker's table must
   * not keep the daemon from serving the overlay, and the next verify() tries again.
   */
  private async syncFilterForward(rules: FamilyRules, network: IpSubnet | undefined, why: "installed" | "repaired"): Promise<boolean> {
    try {
      const changes = network ? await rules.filterForward.sync(network) : await rules.filterForward.remove();
      this.logChanges(rules, changes, why);
      return changes.length > 0;
    } catch (error) {
      this.logger.error({ err: error }, error instanceof Error ? error.message : String(error));
      return false;
    }
  }

  private logChanges(rules: FamilyRules, changes: FilterForwardChange[], why: "installed" | "repaired" | "removed"): void {
    const tool = rules.family === 4 ? "iptables" : "ip6tables";
    for (const change of changes) {
      const message =
        change.action === "removed"
          ? `removed WEFT-FWD from the ${tool} filter table`
          : `WEFT-FWD accepts the Network's forwarded traffic ahead of the ${tool} FORWARD chain's DROP (jump at the top of ${change.hook})`;
      if (why === "repaired") this.logger.warn({ ...change }, `${tool} filter table changed (Docker restart or flush): ${message}`);
      else this.logger.info({ ...change }, message);
    }
  }
}

function ipv4Subnets({ network, ownSubnet }: TrafficRulesDesired): { network: Ipv4Subnet; ownSubnet: Ipv4Subnet } | undefined {
  return network && ownSubnet ? { network, ownSubnet } : undefined;
}
