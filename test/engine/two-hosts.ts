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
import { waitForListener } from "../../src/lab/readiness.js";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { terminatePids } from "../../src/process/pids.js";
import { pingFrom } from "../../src/lab/ping.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { ipBatch } from "../../src/lab/netns.js";

export const NETWORK = Ipv4Subnet.parse("10.70.0.0/16");
export const SUBNET_A = Ipv4Subnet.parse("10.70.1.0/24");
export const SUBNET_B = Ipv4Subnet.parse("10.70.2.0/24");
export const UNDERLAY_A = "192.168.90.1";
export const UNDERLAY_B = "192.168.90.2";
/** A second address on B's underlay: a sender that is not a peer. */
export const STRANGER = "192.168.90.3";
export const TUN_A = "10.70.1.0";
export const TUN_B = "10.70.2.0";
/**
 * The IPv6 half, for dual-stack tests: underlay fd70:90::1 (a) / ::2 (b), IPv6Network fd70::/48,
 * a's subnet fd70:0:0:1::/64 (TUN address fd70:0:0:1::), b's fd70:0:0:2::/64.
 */
export const NETWORK6 = Ipv6Subnet.parse("fd70::/48");
export const SUBNET6_A = Ipv6Subnet.parse("fd70:0:0:1::/64");
export const SUBNET6_B = Ipv6Subnet.parse("fd70:0:0:2::/64");
export const TUN6_A = "fd70:0:0:1::";
export const TUN6_B = "fd70:0:0:2::";
export const UNDERLAY6_A = "fd70:90::1";
export const UNDERLAY6_B = "fd70:90::2";

/** Gives both ul0 their IPv6 underlay address (nodad: usable at once). */
export async function addIpv6Underlay(hosts: TwoHosts): Promise<void> {
  await ipBatch(hosts.a, [`addr add ${UNDERLAY6_A}/64 dev ul0 nodad`]);
  await ipBatch(hosts.b, [`addr add ${UNDERLAY6_B}/64 dev ul0 nodad`]);
}

/** Where `iperf3 -s` listens: tests wait for it (waitForListener) before starting the client. */
export const IPERF3_PORT = 5201;

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

/** The engine tests' ping: 3 requests 0.2 s apart unless told otherwise (src/lab/ping.ts does the work). */
export async function ping(
  namespace: string,
  target: string,
  options: { count?: number; size?: number; dontFragment?: boolean; source?: string; timeoutSeconds?: number } = {},
): Promise<PingResult> {
  const result = await pingFrom(namespace, target, {
    count: options.count ?? 3,
    intervalSeconds: 0.2,
    waitSeconds: options.timeoutSeconds ?? 1,
    payload: options.size,
    dontFragment: options.dontFragment,
    source: options.source,
  });
  return { received: result.received, ttl: result.ttl, output: result.stdout + result.stderr };
}

/** What the tests read from `iperf3 -J`: bytes the receiver counted (and, with --bidir, the reverse). */
export interface IperfReport {
  end: { sum_received: { bytes: number; bits_per_second: number }; sum_received_bidir_reverse?: { bytes: number } };
}

/**
 * One 2 s iperf3 TCP test from host a to b's TUN address (`clientArgs` adds e.g. --bidir; `target`
 * another address of b, e.g. its IPv6 one): the server is started, waited for until it listens,
 * and stopped again, also on failure.
 */
export async function iperfAToB(hosts: TwoHosts, clientArgs: readonly string[] = [], target = TUN_B): Promise<IperfReport> {
  const server = spawnDetachedInNamespace(hosts.b, "iperf3", ["-s", "-1", "-B", target], "/dev/null");
  try {
    await waitForListener(hosts.b, "tcp", IPERF3_PORT);
    const run = await execInNamespace(hosts.a, "iperf3", ["-c", target, "-t", "2", "-J", ...clientArgs], { timeoutMs: 20_000 });
    return JSON.parse(run.stdout) as IperfReport;
  } finally {
    await terminatePids([server], 1000);
  }
}
