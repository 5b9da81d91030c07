import type { Logger } from "pino";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import { nftRunner, type NftRunner } from "./nft.js";
import { TABLE_FAMILY, TABLE_NAME, renderRemoval, renderRuleset } from "./nft-ruleset.js";

export interface TrafficRulesDesired {
  network: Ipv4Subnet;
  ownSubnet: Ipv4Subnet;
  ipMasq: boolean;
  forwardRules: boolean;
}

/**
 * weft's masquerade and forward-accept rules (spec §8) in its own nftables table, replaced
 * atomically by apply(), re-checked by verify() (the daemon calls it every --iptables-resync
 * seconds) and removed by remove() (`weft cleanup`). Daemon shutdown leaves them, as flannel.
 */
export class TrafficRules {
  private readonly nft: NftRunner;
  private readonly fullyRandom: boolean;
  private desired: TrafficRulesDesired | undefined;
  /** `nft list` of the table right after apply(): what verify() compares against. */
  private installed: string | undefined;

  constructor(
    private readonly logger: Logger,
    options: { netns?: string; fullyRandom?: boolean } = {},
  ) {
    this.nft = nftRunner(options.netns);
    this.fullyRandom = options.fullyRandom ?? true;
  }

  async apply(desired: TrafficRulesDesired): Promise<void> {
    this.desired = desired;
    if (!desired.ipMasq && !desired.forwardRules) {
      await this.remove();
      this.desired = desired;
      return;
    }
    await this.nft.apply(renderRuleset({ ...desired, fullyRandom: this.fullyRandom }));
    this.installed = await this.nft.listTable(TABLE_FAMILY, TABLE_NAME);
    this.logger.info(
      { table: `${TABLE_FAMILY} ${TABLE_NAME}`, network: desired.network.toString(), ipMasq: desired.ipMasq, forwardRules: desired.forwardRules },
      "installed traffic rules",
    );
  }

  /** Re-applies the rules when the table is missing or differs from what apply() installed. */
  async verify(): Promise<{ repaired: boolean }> {
    const desired = this.desired;
    if (!desired) return { repaired: false };
    const current = await this.nft.listTable(TABLE_FAMILY, TABLE_NAME);
    const wanted = desired.ipMasq || desired.forwardRules ? this.installed : undefined;
    if (current === wanted) return { repaired: false };
    this.logger.warn({ table: `${TABLE_FAMILY} ${TABLE_NAME}` }, "traffic rules were changed or removed by someone else; re-installing");
    await this.apply(desired);
    return { repaired: true };
  }

  /** Deletes weft's table (and with it every weft rule); fine when it does not exist. */
  async remove(): Promise<void> {
    await this.nft.apply(renderRemoval());
    this.installed = undefined;
    this.desired = undefined;
  }
}
