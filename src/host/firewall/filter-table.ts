import type { IpSubnet } from "../../net/ip-subnet.js";

/**
 * One iptables `filter` table as weft sees it: the legacy x_tables one, or iptables-nft's
 * nftables `table ip filter`. Both can exist at once and a forwarded packet passes both, so weft
 * treats them as separate tables. Drivers: iptables-filter-table.ts, nft-filter-table.ts.
 * IPv6 has its own filter tables (ip6tables, nft `table ip6 filter`), driven the same way for
 * a dual-stack network's IPv6Network.
 */

/** weft's chain, the counterpart of flannel's FLANNEL-FWD (flannel-compat §8.1). */
export const WEFT_CHAIN = "WEFT-FWD";
/** Docker's chain for the administrator's rules; Docker creates it but never flushes it. */
export const DOCKER_USER_CHAIN = "DOCKER-USER";
export const FORWARD_CHAIN = "FORWARD";
/** Marks weft's rules for whoever lists the table (`iptables -S`, `nft list`). */
export const WEFT_COMMENT = "weft forward";

export type HookChain = typeof DOCKER_USER_CHAIN | typeof FORWARD_CHAIN;

export interface FilterForwardState {
  /** The FORWARD chain's policy is DROP (Docker ≥ 1.13, ufw's default). */
  forwardDrops: boolean;
  /** A DOCKER-USER chain exists (Docker runs or ran with iptables enabled). */
  dockerUser: boolean;
  /** FORWARD jumps to DOCKER-USER, so a jump placed there is evaluated. */
  dockerUserHooked: boolean;
  /** WEFT-FWD's rules in the driver's normalized form; undefined when the chain does not exist. */
  weftRules: string[] | undefined;
  /** Every rule that jumps to WEFT-FWD; `ref` is what the driver needs to delete exactly that rule. */
  jumps: { chain: string; ref: string }[];
}

export interface FilterTable {
  /** Names the table and tool in logs and errors, e.g. "iptables-legacy filter table". */
  readonly label: string;
  /** The table's state, or undefined when this table does not exist in the namespace. */
  read(): Promise<FilterForwardState | undefined>;
  /** WEFT-FWD's rules for `network` (of the table's family), in read()'s normalized form. */
  expectedRules(network: IpSubnet): string[];
  /**
   * One atomic change: (re)creates WEFT-FWD with the accept rules, deletes `staleJumps` and
   * inserts one jump at the top of `hook` (a jump at the end would sit behind Docker's RETURN).
   */
  install(network: IpSubnet, hook: HookChain, staleJumps: FilterForwardState["jumps"]): Promise<void>;
  /** One atomic change: deletes weft's jumps and WEFT-FWD itself, nothing else. */
  uninstall(state: FilterForwardState): Promise<void>;
}
