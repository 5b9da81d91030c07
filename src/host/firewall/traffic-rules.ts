import type { Logger } from "pino";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import { FilterForward, type FilterForwardChange } from "./filter-forward.js";
import { nftRunner, type NftRunner } from "./nft.js";
import { TABLE_FAMILY, TABLE_NAME, renderRemoval, renderRuleset } from "./nft-ruleset.js";

export interface TrafficRulesDesired {
  network: Ipv4Subnet;
  ownSubnet: Ipv4Subnet;
  ipMasq: boolean;
  forwardRules: boolean;
}

/**
 * weft's masquerade and forward-accept rules (flannel-compat §8) in its own nftables table, replaced
 * atomically by apply(), re-checked by verify() (the daemon calls it every --iptables-resync
 * seconds) and removed by remove() (`weft cleanup`). Daemon shutdown leaves them, as flannel.
 * With forwardRules, also the WEFT-FWD chain in the iptables filter table where that table
 * drops forwarded traffic (Docker hosts; see filter-forward.ts).
 */
export class TrafficRules {
  private readonly nft: NftRunner;
  private readonly filterForward: FilterForward;
  private readonly fullyRandom: boolean;
  private desired: TrafficRulesDesired | undefined;
  /** `nft list` of the table right after apply(): what verify() compares against. */
  private installed: string | undefined;

  constructor(
    private readonly logger: Logger,
    options: { netns?: string; fullyRandom?: boolean } = {},
  ) {
    this.nft = nftRunner(options.netns);
    this.filterForward = new FilterForward(options.netns);
    this.fullyRandom = options.fullyRandom ?? true;
  }

  async apply(desired: TrafficRulesDesired): Promise<void> {
    this.desired = desired;
    if (!desired.ipMasq && !desired.forwardRules) {
      await this.nft.apply(renderRemoval());
      this.installed = undefined;
      await this.syncFilterForward(desired, "installed");
      return;
    }
    await this.nft.apply(renderRuleset({ ...desired, fullyRandom: this.fullyRandom }));
    this.installed = await this.nft.listTable(TABLE_FAMILY, TABLE_NAME);
    this.logger.info(
      { table: `${TABLE_FAMILY} ${TABLE_NAME}`, network: desired.network.toString(), ipMasq: desired.ipMasq, forwardRules: desired.forwardRules },
      "installed traffic rules",
    );
    await this.syncFilterForward(desired, "installed");
  }

  /** Re-applies the rules when the table is missing or differs from what apply() installed. */
  async verify(): Promise<{ repaired: boolean }> {
    const desired = this.desired;
    if (!desired) return { repaired: false };
    const current = await this.nft.listTable(TABLE_FAMILY, TABLE_NAME);
    const wanted = desired.ipMasq || desired.forwardRules ? this.installed : undefined;
    if (current === wanted) return { repaired: await this.syncFilterForward(desired, "repaired") };
    this.logger.warn({ table: `${TABLE_FAMILY} ${TABLE_NAME}` }, "traffic rules were changed or removed by someone else; re-installing");
    await this.apply(desired);
    return { repaired: true };
  }

  /** Deletes weft's table and weft's WEFT-FWD rules (and nothing else); fine when they do not exist. */
  async remove(): Promise<void> {
    await this.nft.apply(renderRemoval());
    this.installed = undefined;
    this.desired = undefined;
    this.logChanges(await this.filterForward.remove(), "removed");
  }

  /**
   * Brings WEFT-FWD in line with `desired`; true when something changed. A failure is logged,
   * not thrown: a problem in Docker's table must not keep the daemon from serving the overlay,
   * and the next verify() tries again.
   */
  private async syncFilterForward(desired: TrafficRulesDesired, why: "installed" | "repaired"): Promise<boolean> {
    try {
      const changes = desired.forwardRules ? await this.filterForward.sync(desired.network) : await this.filterForward.remove();
      this.logChanges(changes, why);
      return changes.length > 0;
    } catch (error) {
      this.logger.error({ err: error }, error instanceof Error ? error.message : String(error));
      return false;
    }
  }

  private logChanges(changes: FilterForwardChange[], why: "installed" | "repaired" | "removed"): void {
    for (const change of changes) {
      const message =
        change.action === "removed"
          ? "removed WEFT-FWD from the iptables filter table"
          : `WEFT-FWD accepts the Network's forwarded traffic ahead of the FORWARD chain's DROP (jump at the top of ${change.hook})`;
      if (why === "repaired") this.logger.warn({ ...change }, `iptables filter table changed (Docker restart or flush): ${message}`);
      else this.logger.info({ ...change }, message);
    }
  }
}
