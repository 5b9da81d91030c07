import { readFile } from "node:fs/promises";
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
import { runInNamespace } from "./namespace-command.js";

/**
 * The filter table through an iptables command (`iptables-nft`, `iptables-legacy` or plain
 * `iptables`): the same tool family Docker uses, so its `iptables -S` shows weft's rules and
 * weft's rules never make the table "incompatible" for it. Changes go through
 * `iptables-restore --noflush`: one commit, so WEFT-FWD is never seen half-filled. The IPv6
 * filter table is the same through `ip6tables-nft`, `ip6tables-legacy` or `ip6tables`.
 */
export class IptablesFilterTable implements FilterTable {
  readonly label: string;

  constructor(
    private readonly command: string,
    private readonly netns: string | undefined,
    /** Legacy only: read() first checks that the table exists, since listing it would create it. */
    private readonly legacy: boolean,
    /** 6 for an ip6tables command. */
    private readonly family: IpFamily = 4,
  ) {
    this.label = `${command} filter table`;
  }

  async read(): Promise<FilterForwardState | undefined> {
    if (this.legacy && !(await legacyFilterTableExists(this.netns, this.family))) return undefined;
    const listing = await runInNamespace(this.netns, this.command, ["-w", "5", "-t", "filter", "-S"]);
    return parseIptablesListing(listing);
  }

  expectedRules(network: IpSubnet): string[] {
    return [`-s ${network.toString()} -j ACCEPT`, `-d ${network.toString()} -j ACCEPT`];
  }

  async install(network: IpSubnet, hook: HookChain, staleJumps: FilterForwardState["jumps"]): Promise<void> {
    const comment = `-m comment --comment "${WEFT_COMMENT}"`;
    await this.restore([
      // With --noflush, declaring a user chain creates it, or flushes it when it exists.
      `:${WEFT_CHAIN} - [0:0]`,
      `-A ${WEFT_CHAIN} -s ${network.toString()} ${comment} -j ACCEPT`,
      `-A ${WEFT_CHAIN} -d ${network.toString()} ${comment} -j ACCEPT`,
      ...staleJumps.map((jump) => `-D ${jump.chain} ${jump.ref}`),
      `-I ${hook} 1 ${comment} -j ${WEFT_CHAIN}`,
    ]);
  }

  async uninstall(state: FilterForwardState): Promise<void> {
    const lines = state.jumps.map((jump) => `-D ${jump.chain} ${jump.ref}`);
    if (state.weftRules !== undefined) lines.push(`-F ${WEFT_CHAIN}`, `-X ${WEFT_CHAIN}`);
    if (lines.length > 0) await this.restore(lines);
  }

  private async restore(lines: string[]): Promise<void> {
    const script = ["*filter", ...lines, "COMMIT", ""].join("\n");
    await runInNamespace(this.netns, restoreCommandFor(this.command), ["-w", "5", "--noflush"], script);
  }
}

/** `iptables-nft` → `iptables-nft-restore`, `iptables` → `iptables-restore` (ip6tables alike). */
function restoreCommandFor(command: string): string {
  return `${command}-restore`;
}

/**
 * The legacy filter table exists in a namespace when /proc/net/ip_tables_names (IPv6:
 * ip6_tables_names) lists it (the file is per namespace). Checking there keeps weft from
 * creating the table by listing it.
 */
export async function legacyFilterTableExists(netns: string | undefined, family: IpFamily = 4): Promise<boolean> {
  const file = family === 4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names";
  const names =
    netns === undefined
      ? await readFile(file, "utf8").catch(() => "")
      : await runInNamespace(netns, "cat", [file]).catch(() => "");
  return names.split("\n").includes("filter");
}

const COMMENT_MATCH = /\s*-m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)/g;

/** Reads `iptables -t filter -S` output: policies, DOCKER-USER, WEFT-FWD and jumps to it. */
export function parseIptablesListing(listing: string): FilterForwardState {
  const state: FilterForwardState = { forwardDrops: false, dockerUser: false, dockerUserHooked: false, weftRules: undefined, jumps: [] };
  const weftRules: string[] = [];
  let weftChain = false;
  for (const line of listing.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] === "-P" && words[1] === FORWARD_CHAIN) state.forwardDrops = words[2] === "DROP";
    if (words[0] === "-N" && words[1] === DOCKER_USER_CHAIN) state.dockerUser = true;
    if (words[0] === "-N" && words[1] === WEFT_CHAIN) weftChain = true;
    if (words[0] !== "-A" || words[1] === undefined) continue;
    const chain = words[1];
    const spec = line.trim().slice(`-A ${chain} `.length);
    const target = /(?:^|\s)-[jg] (\S+)$/.exec(spec)?.[1];
    if (chain === FORWARD_CHAIN && target === DOCKER_USER_CHAIN) state.dockerUserHooked = true;
    if (target === WEFT_CHAIN) state.jumps.push({ chain, ref: spec });
    if (chain === WEFT_CHAIN) weftRules.push(spec.replace(COMMENT_MATCH, "").trim());
  }
  if (weftChain) state.weftRules = weftRules;
  return state;
}
