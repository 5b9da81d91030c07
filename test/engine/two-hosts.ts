/**
 * Two "hosts" for engine tests, each a network namespace joined by one veth (the underlay):
 *
 *     <p>a                                        <p>b
 *   +-------------------------+                +-------------------------+
 *   | tun wt0  10.70.1.0/32   |                | tun wt0  10.70.2.0/32   |
 *   |  route 10.70.0.0/16     |                |  route 10.70.0.0/16     |
 *   |  (engine A, in-process) |                |  (engine B or kernel    |
 *   |                         |                |   vxlan, see the test)  |
 *   | ul0 192.168.90.1/24 ----+---- veth ------+---- ul0 192.168.90.2/24 |
 *   +-------------------------+                +-------------------------+
 *
 * The engines run in this test process: the addon opens their TUN and socket inside the
 * namespace (setns on a setup thread), so the test can read counters and count fds directly.
 */
import { createNamespace, createVethPair, deleteNamespace, execInNamespace, uniquePrefix } from "../../src/lab/netns.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";

export const NETWORK = Ipv4Subnet.parse("10.70.0.0/16");
export const SUBNET_A = Ipv4Subnet.parse("10.70.1.0/24");
export const SUBNET_B = Ipv4Subnet.parse("10.70.2.0/24");
export const UNDERLAY_A = "192.168.90.1";
export const UNDERLAY_B = "192.168.90.2";
/** A second address on B's underlay: a sender that is not a peer. */
export const STRANGER = "192.168.90.3";
export const TUN_A = "10.70.1.0";
export const TUN_B = "10.70.2.0";

export interface TwoHosts {
  prefix: string;
  a: string;
  b: string;
  destroy(): Promise<void>;
}

export async function createTwoHosts(): Promise<TwoHosts> {
  const prefix = uniquePrefix("wt");
  const a = `${prefix}a`;
  const b = `${prefix}b`;
  const destroy = async () => {
    await deleteNamespace(a, 1000);
    await deleteNamespace(b, 1000);
  };
  try {
    await createNamespace(a);
    await createNamespace(b);
    await createVethPair(
      { name: "ul0", namespace: a, addresses: [`${UNDERLAY_A}/24`] },
      { name: "ul0", namespace: b, addresses: [`${UNDERLAY_B}/24`, `${STRANGER}/24`] },
    );
  } catch (error) {
    await destroy();
    throw error;
  }
  return { prefix, a, b, destroy };
}

export interface PingResult {
  received: number;
  ttl?: number;
  output: string;
}

/** Pings from a namespace; never throws for lost packets (the result says how many came back). */
export async function ping(
  namespace: string,
  target: string,
  options: { count?: number; size?: number; dontFragment?: boolean; source?: string; timeoutSeconds?: number } = {},
): Promise<PingResult> {
  const args = ["-n", "-c", String(options.count ?? 3), "-i", "0.2", "-W", String(options.timeoutSeconds ?? 1)];
  if (options.size !== undefined) args.push("-s", String(options.size));
  if (options.dontFragment) args.push("-M", "do");
  if (options.source) args.push("-I", options.source);
  args.push(target);
  const result = await execInNamespace(namespace, "ping", args, { allowFailure: true });
  const output = result.stdout + result.stderr;
  const received = Number(/(\d+) (?:packets )?received/.exec(output)?.[1] ?? "0");
  const ttlText = /ttl=(\d+)/.exec(output)?.[1];
  return { received, ttl: ttlText === undefined ? undefined : Number(ttlText), output };
}
