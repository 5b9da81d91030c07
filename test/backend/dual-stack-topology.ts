/*
 * A dual-stack underlay for the kernel backends' IPv6 tests, hosts 1..N on one bridge:
 *
 *                 <p>ul: bridge br0 (no STP, no multicast snooping)
 *        +------------------------+------------------------+
 *   <p>h1 ul0 192.168.U.11/24  <p>h2 ul0 .12            <p>h3 ul0 .13
 *             fd00:U::11/64          fd00:U::12/64          fd00:U::13/64
 *        ct0 10.66.1.1/24        ct0 10.66.2.1/24       ct0 10.66.3.1/24      ("docker0")
 *            fd66:0:0:1::1/64        fd66:0:0:2::1/64       fd66:0:0:3::1/64
 *             |                        |                      |
 *   <p>h1c eth0 10.66.1.2/24    <p>h2c eth0 …2           <p>h3c eth0 …2          (a container)
 *             fd66:0:0:1::2/64
 *
 * Host i leases 10.66.i.0/24 and fd66:0:0:i::/64; a test runs the backend for each host in
 * this process (a Kernel pointed at the host's namespace) and hands it the leases.
 */
import { createBridge, createNamespace, createVethPair, deleteNamespace, execInNamespace, ipBatch, setSysctls } from "../../src/lab/netns.js";
import { Kernel } from "../../src/kernel/kernel.js";
import type { Backend, BackendContext } from "../../src/backend/backend.js";
import type { Lease, PeerEvent } from "../../src/lease/types.js";
import { ipv6AddressesSettled } from "../support/ipv6-settled.js";
import { DUAL_STACK, backendContext, lease } from "./kernel-fixtures.js";

export interface DualStackHost {
  index: number;
  namespace: string;
  container: string;
  address: string;
  addressV6: string;
  subnet: string;
  subnetV6: string;
  /** The container's addresses. */
  containerAddress: string;
  containerAddressV6: string;
}

export interface DualStackTopology {
  hosts: DualStackHost[];
  teardown(): Promise<void>;
}

/** `underlay` picks 192.168.<underlay>.0/24 and fd00:<underlay>::/64, so test files never share addresses. */
export async function buildDualStackTopology(prefix: string, count: number, underlay: number): Promise<DualStackTopology> {
  const bridge = `${prefix}ul`;
  const hosts: DualStackHost[] = Array.from({ length: count }, (_, i) => {
    const index = i + 1;
    return {
      index,
      namespace: `${prefix}h${index}`,
      container: `${prefix}h${index}c`,
      address: `192.168.${underlay}.${10 + index}`,
      addressV6: `fd00:${underlay}::${10 + index}`,
      subnet: `10.66.${index}.0/24`,
      subnetV6: `fd66:0:0:${index}::/64`,
      containerAddress: `10.66.${index}.2`,
      containerAddressV6: `fd66:0:0:${index}::2`,
    };
  });
  const namespaces = [bridge, ...hosts.flatMap((host) => [host.namespace, host.container])];
  const teardown = async () => void (await Promise.all(namespaces.map((namespace) => deleteNamespace(namespace))));
  try {
    await Promise.all(namespaces.map((namespace) => createNamespace(namespace)));
    await createBridge(bridge, "br0");
    await ipBatch(bridge, ["link set dev br0 type bridge mcast_snooping 0"]);
    for (const host of hosts) {
      const i = host.index;
      await createVethPair(
        { name: "ul0", namespace: host.namespace, addresses: [`${host.address}/24`, `${host.addressV6}/64`] },
        { name: `h${i}`, namespace: bridge, master: "br0" },
      );
      await createVethPair(
        { name: "ct0", namespace: host.namespace, addresses: [`10.66.${i}.1/24`, `fd66:0:0:${i}::1/64`] },
        { name: "eth0", namespace: host.container, addresses: [`${host.containerAddress}/24`, `${host.containerAddressV6}/64`] },
      );
      await ipBatch(host.container, [`route add default via 10.66.${i}.1`, `route add ::/0 via fd66:0:0:${i}::1`]);
      await setSysctls(host.namespace, { "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1" });
    }
    await Promise.all(namespaces.map((namespace) => ipv6AddressesSettled(namespace)));
  } catch (error) {
    await teardown();
    throw error;
  }
  return { hosts, teardown };
}

/** One echo request answered, from the namespace to `to` (either family); `size` sets a don't-fragment payload. */
export async function pings(from: string, to: string, options: { size?: number; source?: string } = {}): Promise<boolean> {
  const args = ["-c", "1", "-W", "1"];
  if (options.size !== undefined) args.push("-M", "do", "-s", String(options.size));
  if (options.source !== undefined) args.push("-I", options.source);
  return (await execInNamespace(from, "ping", [...args, to], { allowFailure: true })).exitCode === 0;
}

/** stdout of a command in a namespace. */
export async function show(namespace: string, command: string, ...args: string[]): Promise<string> {
  return (await execInNamespace(namespace, command, args)).stdout;
}

/** A host's backend running in this process, with the lease it advertises. */
export interface RunningHost<B extends Backend> {
  host: DualStackHost;
  context: BackendContext;
  backend: B;
  lease: Lease;
  /** The MTU register() reported (FLANNEL_MTU). */
  mtu: number;
}

/**
 * Starts `host`'s backend as the daemon would: a dual-stack (or, `dualStack` false, IPv4-only)
 * context, register(), the own lease from the registration, activate(). `context` reuses a
 * previous run's (a restart: same state dir).
 */
export async function startBackend<B extends Backend>(
  host: DualStackHost,
  backendOptions: Record<string, unknown>,
  dualStack: boolean,
  create: (context: BackendContext, kernel: Kernel) => B,
  context?: BackendContext,
): Promise<RunningHost<B>> {
  const external = { name: "ul0", address: host.address, ...(dualStack ? { addressV6: host.addressV6 } : {}) };
  const ctx = context ?? (await backendContext(backendOptions, external, undefined, dualStack ? DUAL_STACK : {}));
  const backend = create(ctx, new Kernel(host.namespace));
  const registration = await backend.register();
  const attrs = { publicIP: host.address, ...(dualStack ? { publicIPv6: host.addressV6 } : {}), ...registration.attrs };
  const own = lease(host.subnet, attrs, dualStack ? host.subnetV6 : undefined);
  await backend.activate(own);
  return { host, context: ctx, backend, lease: own, mtu: registration.mtu };
}

/** Every other host's lease as an "added" event: the snapshot the watcher gives `self`. */
export function peerEventsFor<B extends Backend>(self: RunningHost<B>, running: readonly RunningHost<B>[]): PeerEvent[] {
  return running.filter((other) => other !== self).map((other) => ({ kind: "added", lease: other.lease }));
}
