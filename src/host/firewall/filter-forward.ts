import type { IpFamily, IpSubnet } from "../../net/ip-subnet.js";
import { DOCKER_USER_CHAIN, FORWARD_CHAIN, WEFT_CHAIN, type FilterForwardState, type FilterTable, type HookChain } from "./filter-table.js";
import { IptablesFilterTable, legacyFilterTableExists } from "./iptables-filter-table.js";
import { CommandMissingError } from "../../process/command-errors.js";
import { runInNamespace } from "./namespace-command.js";
import { NftFilterTable } from "./nft-filter-table.js";

/**
 * weft's accept rules in the iptables filter table, for hosts where that table drops forwarded
 * traffic (Docker sets FORWARD's policy to DROP, flannel-compat §8.1 and §12 #6). weft's own nftables
 * table cannot fix this: an accept there ends only that table's chain, and every base chain on
 * the forward hook must accept. So weft adds flannel's FLANNEL-FWD, named WEFT-FWD:
 *   -A WEFT-FWD -s <Network> -j ACCEPT, -A WEFT-FWD -d <Network> -j ACCEPT
 * jumped to from the top of DOCKER-USER when FORWARD jumps there (Docker rebuilds FORWARD on
 * restart but keeps DOCKER-USER, and Docker ≥ 28 drops unpublished traffic before anything
 * appended to FORWARD), else from the top of FORWARD.
 *
 * Only tables that need it are touched: FORWARD policy DROP, or a DOCKER-USER chain. Both
 * iptables worlds are checked, since rules in both the legacy and the nft table apply to a packet.
 * One FilterForward serves one address family: IPv4 through iptables, the IPv6Network of a
 * dual-stack network through ip6tables (Docker with ip6tables enabled drops there as well).
 */

export type FilterForwardChange = { table: string; action: "installed"; hook: HookChain } | { table: string; action: "removed" };

export class FilterForward {
  private resolved: FilterTable[] | undefined;

  /** `tables` pins the drivers (tests of the nft fallback); by default they are found on PATH. */
  constructor(
    private readonly netns?: string,
    private readonly tables?: FilterTable[],
    private readonly family: IpFamily = 4,
  ) {}

  /** `iptables` or `ip6tables`: the command family of this address family. */
  private get tool(): string {
    return this.family === 4 ? "iptables" : "ip6tables";
  }

  /** Makes every filter table that would drop the Network's (of this family) forwarded traffic accept it. */
  async sync(network: IpSubnet): Promise<FilterForwardChange[]> {
    return this.eachTable(async (table, state) => {
      const wanted = wantedHook(state);
      if (wanted === undefined) {
        if (state.weftRules === undefined && state.jumps.length === 0) return undefined;
        await table.uninstall(state);
        return { table: table.label, action: "removed" };
      }
      const rulesMatch = JSON.stringify(state.weftRules) === JSON.stringify(table.expectedRules(network));
      if (rulesMatch && state.jumps.length === 1 && state.jumps[0]?.chain === wanted) return undefined;
      await table.install(network, wanted, state.jumps);
      return { table: table.label, action: "installed", hook: wanted };
    });
  }

  /** Deletes WEFT-FWD and every jump to it from every filter table; nothing else. */
  async remove(): Promise<FilterForwardChange[]> {
    return this.eachTable(async (table, state) => {
      if (state.weftRules === undefined && state.jumps.length === 0) return undefined;
      await table.uninstall(state);
      return { table: table.label, action: "removed" };
    });
  }

  private async eachTable(
    step: (table: FilterTable, state: FilterForwardState) => Promise<FilterForwardChange | undefined>,
  ): Promise<FilterForwardChange[]> {
    const changes: FilterForwardChange[] = [];
    const failures: string[] = [];
    const { tables, problems } = await this.findTables();
    failures.push(...problems);
    for (const table of tables) {
      try {
        const state = await table.read();
        if (state === undefined) continue;
        const change = await step(table, state);
        if (change) changes.push(change);
      } catch (error) {
        failures.push(`${table.label}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (failures.length > 0) {
      throw new Error(
        `could not manage weft's ${WEFT_CHAIN} accept rules, so forwarded Network traffic may be dropped by the ${this.tool} FORWARD chain: ${failures.join("; ")}`,
      );
    }
    return changes;
  }

  /**
   * The drivers for this host: the nft world through iptables-nft (or `iptables` when that is
   * the nf_tables variant, or nft itself when no iptables is installed), and the legacy world
   * through iptables-legacy (or a legacy `iptables`). Kept once every tool was found.
   */
  private async findTables(): Promise<{ tables: FilterTable[]; problems: string[] }> {
    if (this.tables) return { tables: this.tables, problems: [] };
    if (this.resolved) return { tables: this.resolved, problems: [] };
    const tool = this.tool;
    const [nftVariant, legacyVariant, plain] = await Promise.all([
      iptablesVariant(this.netns, `${tool}-nft`),
      iptablesVariant(this.netns, `${tool}-legacy`),
      iptablesVariant(this.netns, tool),
    ]);
    const tables: FilterTable[] = [];
    if (nftVariant === "nf_tables") tables.push(new IptablesFilterTable(`${tool}-nft`, this.netns, false, this.family));
    else if (plain === "nf_tables") tables.push(new IptablesFilterTable(tool, this.netns, false, this.family));
    else tables.push(new NftFilterTable(this.netns, this.family));
    let complete = nftVariant !== undefined || plain === "nf_tables";
    const problems: string[] = [];
    if (legacyVariant === "legacy") tables.push(new IptablesFilterTable(`${tool}-legacy`, this.netns, true, this.family));
    else if (plain === "legacy") tables.push(new IptablesFilterTable(tool, this.netns, true, this.family));
    else {
      complete = false;
      if (await legacyFilterTableExists(this.netns, this.family)) {
        problems.push(`a legacy ${tool} filter table exists but neither ${tool}-legacy nor a legacy ${tool} is installed (apt-get install iptables)`);
      }
    }
    if (complete) this.resolved = tables;
    return { tables, problems };
  }
}

/** Where WEFT-FWD's jump belongs in this table, or undefined when nothing there drops. */
function wantedHook(state: FilterForwardState): HookChain | undefined {
  // A DOCKER-USER chain alone is enough: Docker ≥ 28 drops traffic to unpublished container
  // ports in its own chains even when the FORWARD policy is ACCEPT.
  if (!state.forwardDrops && !state.dockerUser) return undefined;
  return state.dockerUserHooked ? DOCKER_USER_CHAIN : FORWARD_CHAIN;
}

/** "nf_tables" or "legacy" from `<command> --version`; undefined when it is not installed. */
async function iptablesVariant(netns: string | undefined, command: string): Promise<"nf_tables" | "legacy" | undefined> {
  try {
    const version = await runInNamespace(netns, command, ["--version"]);
    // iptables before 1.8 had only the legacy backend and printed no variant.
    return /\(nf_tables\)/.test(version) ? "nf_tables" : "legacy";
  } catch (error) {
    if (error instanceof CommandMissingError) return undefined;
    throw error;
  }
}
