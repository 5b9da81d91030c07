import type { Logger } from "pino";
import { LineMonitor } from "../../process/line-monitor.js";
import { TABLE_NAME } from "./nft-ruleset.js";

/**
 * nftables ruleset changes as a trigger for the traffic-rules check: one long-lived
 * `nft -j monitor ruleset` (one JSON object per line). It sees every nf_tables change, so also
 * iptables-nft's (Docker restarting and rebuilding FORWARD, `iptables -F`); iptables-legacy
 * changes it cannot see (the caller keeps polling when a legacy filter table is in use).
 */

/** Which table a ruleset change touched. */
export interface RulesetChange {
  /** "add", "delete", "insert", "replace", "create", "flush". */
  verb: string;
  /** "table", "chain", "rule", "set", "element", … */
  kind: string;
  family: string;
  table: string;
}

/**
 * One line of `nft -j monitor ruleset`; undefined for anything else. Example (nftables 1.0.6):
 *   {"delete": {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "handle": 4, "expr": […]}}}
 * A table object names itself in "name", everything else its table in "table".
 */
export function parseRulesetLine(line: string): RulesetChange | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  const [verb, body] = singleEntry(parsed) ?? [];
  const [kind, object] = singleEntry(body) ?? [];
  if (verb === undefined || kind === undefined || typeof object !== "object" || object === null) return undefined;
  const { family, table, name } = object as Record<string, unknown>;
  const tableName = kind === "table" ? name : table;
  if (typeof family !== "string" || typeof tableName !== "string") return undefined;
  return { verb, kind, family, table: tableName };
}

function singleEntry(value: unknown): [string, unknown] | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const entries = Object.entries(value);
  return entries.length === 1 ? (entries[0] as [string, unknown]) : undefined;
}

/** Whether the change is to a table the traffic rules keep: `ip weft`, `ip6 weft`, and the (ip6)tables filter table (WEFT-FWD). */
export function concernsTrafficRules(change: RulesetChange): boolean {
  return (change.family === "ip" || change.family === "ip6") && (change.table === TABLE_NAME || change.table === "filter");
}

/** The ruleset event stream (not yet started): each change to a table of the traffic rules goes to `onChange`. */
export function rulesetEventMonitor(options: {
  onChange: (change: RulesetChange) => void;
  onRunning: (running: boolean) => void;
  logger: Logger;
  /** Watch this network namespace instead of the daemon's own (tests). */
  netns?: string;
}): LineMonitor {
  return new LineMonitor({
    what: "ruleset events (nft monitor)",
    program: "nft",
    args: ["-j", "monitor", "ruleset"],
    netns: options.netns,
    logger: options.logger,
    onRunning: options.onRunning,
    onLine: (line) => {
      const change = parseRulesetLine(line);
      if (change && concernsTrafficRules(change)) options.onChange(change);
    },
  });
}
