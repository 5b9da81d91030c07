import { openEngine, type Engine, type WireguardEngineOptions } from "../../../src/engine/engine.js";
import type { StaticKeys } from "../../../src/engine/wireguard/noise.js";
import { addressTun } from "../../../src/kernel/tun-routing.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, TUN_B, UNDERLAY_A, UNDERLAY_B, type TwoHosts } from "../two-hosts.js";

/**
 * Two weft engines in wireguard mode on two-hosts.ts' namespaces, each the other's peer: TUN
 * wt0 at MTU 1420 (1500 - 80, flannel's wireguard overhead), port 51820, addressed and routed.
 * `a`/`b` add engine options (timers, the DoS defence) beyond the key.
 */
export const WIREGUARD_PORT = 51820;

export interface WireguardPair {
  engineA: Engine;
  engineB: Engine;
}

export async function openWireguardPair(
  hosts: TwoHosts,
  keys: { a: StaticKeys; b: StaticKeys },
  options: { a?: Omit<WireguardEngineOptions, "privateKey">; b?: Omit<WireguardEngineOptions, "privateKey"> } = {},
): Promise<WireguardPair> {
  const open = (netns: string, bindAddress: string, icmpSource: string, privateKey: Buffer, extra: Omit<WireguardEngineOptions, "privateKey"> | undefined) =>
    openEngine({ mode: "wireguard", tunName: "wt0", mtu: 1420, bindAddress, netns, icmpSource, port: WIREGUARD_PORT, wireguard: { privateKey, ...extra } });
  const engineA = open(hosts.a, UNDERLAY_A, TUN_A, keys.a.privateKey, options.a);
  let engineB: Engine;
  try {
    engineB = open(hosts.b, UNDERLAY_B, TUN_B, keys.b.privateKey, options.b);
  } catch (error) {
    engineA.close();
    throw error;
  }
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  await addressTun("wt0", SUBNET_B, NETWORK, hosts.b);
  engineA.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B, publicKey: keys.b.publicKey.toString("base64"), port: WIREGUARD_PORT });
  engineB.setPeer({ subnet: SUBNET_A, publicIP: UNDERLAY_A, publicKey: keys.a.publicKey.toString("base64"), port: WIREGUARD_PORT });
  return { engineA, engineB };
}
