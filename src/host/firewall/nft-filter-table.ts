import type { IpFamily, IpSubnet } from "../../net/ip-subnet.js";
import {
  DOCKER_USER_CHAIN,
  FORWARD_CHAIN,
  WEFT_CHAIN,
  WEFT_COMMENT,
  type FilterForwardState,
  type FilterTable,
  type HookChain,
} from "./filter-table.js";
import { CommandFailedError } from "../../process/command-errors.js";
import { runInNamespace } from "./namespace-command.js";

/**
 * iptables-nft's `table ip filter` (ip6tables-nft's `table ip6 filter`) through `nft`, for hosts
 * whose Docker brought its own iptables (snap, k3s) and the host has none. Only expressions
 * iptables-nft can translate back are used (address prefix, accept, jump, rule comment), so
 * `iptables -S` still lists the table.
 */
export class NftFilterTable implements FilterTable {
  readonly label: string;
  /** `ip` or `ip6`: the table family and the address match keyword. */
  private readonly ip: "ip" | "ip6";
  private readonly table: string;

  constructor(
    private readonly netns: string | undefined,
    family: IpFamily = 4,
  ) {
    this.ip = family === 4 ? "ip" : "ip6";
    this.table = `${this.ip} filter`;
    this.label = `nft table ${this.table}`;
  }

  async read(): Promise<FilterForwardState | undefined> {
    const listing = await runInNamespace(this.netns, "nft", ["-a", "list", "table", this.ip, "filter"]).catch((error: unknown) => {
      if (error instanceof CommandFailedError && /No such file or directory/.test(error.stderr)) return undefined;
      throw error;
    });
    return listing === undefined ? undefined : parseNftListing(listing);
  }

  expectedRules(network: IpSubnet): string[] {
    return [`${this.ip} saddr ${network.toString()} accept`, `${this.ip} daddr ${network.toString()} accept`];
  }

  async install(network: IpSubnet, hook: HookChain, staleJumps: FilterForwardState["jumps"]): Promise<void> {
    const comment = `comment "${WEFT_COMMENT}"`;
    await this.apply([
      `add chain ${this.table} ${WEFT_CHAIN}`,
      `flush chain ${this.table} ${WEFT_CHAIN}`,
      ...this.expectedRules(network).map((rule) => `add rule ${this.table} ${WEFT_CHAIN} ${rule} ${comment}`),
      ...staleJumps.map((jump) => `delete rule ${this.table} ${jump.chain} handle ${jump.ref}`),
      // `insert` without a position puts the rule first in the chain.
      `insert rule ${this.table} ${hook} jump ${WEFT_CHAIN} ${comment}`,
    ]);
  }

  async uninstall(state: FilterForwardState): Promise<void> {
    const lines = state.jumps.map((jump) => `delete rule ${this.table} ${jump.chain} handle ${jump.ref}`);
    if (state.weftRules !== undefined) lines.push(`flush chain ${this.table} ${WEFT_CHAIN}`, `delete chain ${this.table} ${WEFT_CHAIN}`);
    if (lines.length > 0) await this.apply(lines);
  }

  private async apply(lines: string[]): Promise<void> {
    await runInNamespace(this.netns, "nft", ["-f", "-"], `${lines.join("\n")}\n`);
  }
}

/**
 * Reads `nft -a list table ip filter`: chains, the FORWARD policy, and rules normalized
 * without counters, comments and handles (iptables-nft adds counters and xt comments).
 */
export function parseNftListing(listing: string): FilterForwardState {
  const state: FilterForwardState = { forwardDrops: false, dockerUser: false, dockerUserHooked: false, weftRules: undefined, jumps: [] };
  let chain: string | undefined;
  for (const raw of listing.split("\n")) {
    const line = raw.trim();
    const chainHeader = /^chain (\S+) \{/.exec(line);
    if (chainHeader) {
      chain = chainHeader[1] as string;
      if (chain === DOCKER_USER_CHAIN) state.dockerUser = true;
      if (chain === WEFT_CHAIN) state.weftRules = [];
      continue;
    }
    if (line === "}") {
      chain = undefined;
      continue;
    }
    if (chain === undefined) continue;
    if (/^type \S+ hook /.test(line)) {
      if (chain === FORWARD_CHAIN) state.forwardDrops = /policy drop;/.test(line);
      continue;
    }
    const handle = /# handle (\d+)$/.exec(line)?.[1];
    if (handle === undefined) continue;
    const rule = line
      .replace(/# handle \d+$/, "")
      .replace(/\bcounter packets \d+ bytes \d+/, "")
      .replace(/\bcounter\b/, "")
      .replace(/\bcomment "(?:[^"\\]|\\.)*"/, "")
      .replace(/\s+/g, " ")
      .trim();
    const target = /\b(?:jump|goto) (\S+)$/.exec(rule)?.[1];
    if (chain === FORWARD_CHAIN && target === DOCKER_USER_CHAIN) state.dockerUserHooked = true;
    if (target === WEFT_CHAIN) state.jumps.push({ chain, ref: handle });
    if (chain === WEFT_CHAIN) state.weftRules?.push(rule);
  }
  return state;
}
