import { execInNamespace } from "./netns.js";

/**
 * One ping run from inside a namespace, for `lab check` and the engine tests. Never throws for
 * lost packets: the result says how many came back and, when none did, ping's own words why.
 */
export interface PingOptions {
  /** Echo requests to send (`-c`). */
  count: number;
  /** Seconds to wait for each reply (`-W`). */
  waitSeconds: number;
  /** Seconds between requests (`-i`); ping's default (1 s) when not given. */
  intervalSeconds?: number;
  /** ICMP payload bytes (`-s`). */
  payload?: number;
  /** Set the don't-fragment bit (`-M do`). */
  dontFragment?: boolean;
  /** Source address or interface (`-I`). */
  source?: string;
  /** Kill ping after this long (it should end by itself well before). */
  timeoutMs?: number;
}

export interface PingResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Replies received. */
  received: number;
  /** TTL of the first reply. */
  ttl?: number;
  /** Round-trip time of the first reply. */
  rttMs?: number;
}

export async function pingFrom(namespace: string, target: string, options: PingOptions): Promise<PingResult> {
  const args = ["-n", "-c", String(options.count)];
  if (options.intervalSeconds !== undefined) args.push("-i", String(options.intervalSeconds));
  args.push("-W", String(options.waitSeconds));
  if (options.payload !== undefined) args.push("-s", String(options.payload));
  if (options.dontFragment) args.push("-M", "do");
  if (options.source !== undefined) args.push("-I", options.source);
  args.push(target);
  const { exitCode, stdout, stderr } = await execInNamespace(namespace, "ping", args, { allowFailure: true, timeoutMs: options.timeoutMs });
  const output = stdout + stderr;
  const ttl = /ttl=(\d+)/.exec(output)?.[1];
  const rtt = /time=([\d.]+) ms/.exec(stdout)?.[1];
  return {
    exitCode,
    stdout,
    stderr,
    received: Number(/(\d+) (?:packets )?received/.exec(output)?.[1] ?? "0"),
    ttl: ttl === undefined ? undefined : Number(ttl),
    rttMs: rtt === undefined ? undefined : Number(rtt),
  };
}
