import type { PeerRoute } from "../../engine/engine.js";
import type { WgPeerConfig, WgPeerState } from "../../kernel/wireguard-device.js";

/**
 * What a WireGuard device's peers must change to match the lease set: the pure core of the
 * device backend, the same function for peer events and for reconcile (desired peers vs what
 * `wg show dump` says). A peer is set again only when something wg holds differs (a `wg set`
 * replaces its allowed IPs, which must not happen for nothing on a busy device).
 */

export interface DevicePeerPlan {
  /** Peers to add or update, in the lease set's order. */
  set: WgPeerConfig[];
  /** Public keys of peers to remove (before the sets: a PSK that must go is a remove, then a set). */
  remove: string[];
}

/** The device configuration of a served peer. */
export function devicePeerConfig(route: PeerRoute, persistentKeepaliveSeconds: number): WgPeerConfig {
  if (route.publicKey === undefined || route.port === undefined) throw new Error(`peer ${route.subnet}: no PublicKey or Port (not a wireguard peer route)`);
  return { publicKey: route.publicKey, endpoint: `${route.publicIP}:${route.port}`, allowedIps: [route.subnet.toString()], persistentKeepaliveSeconds };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");
}

/**
 * `removeUnknown`: also remove peers no lease backs (false until the first peer snapshot is in:
 * the peers a restarted daemon finds on the device must survive until etcd has been read).
 * `presharedKey`: whether peers must carry our PSK (else none).
 */
export function planDevicePeers(
  desired: readonly WgPeerConfig[],
  actual: readonly WgPeerState[],
  options: { presharedKey: boolean; removeUnknown: boolean },
): DevicePeerPlan {
  const actualByKey = new Map(actual.map((peer) => [peer.publicKey, peer]));
  const wanted = new Set<string>();
  const plan: DevicePeerPlan = { set: [], remove: [] };
  for (const peer of desired) {
    if (wanted.has(peer.publicKey)) continue; // two leases with one key (a cloned key file): wg has one peer; the first lease wins
    wanted.add(peer.publicKey);
    const existing = actualByKey.get(peer.publicKey);
    if (existing && !options.presharedKey && existing.presharedKey !== "none") {
      plan.remove.push(peer.publicKey); // `wg set` cannot take a PSK away: the peer is set again without one
      plan.set.push(peer);
      continue;
    }
    const same =
      existing !== undefined &&
      existing.endpoint === peer.endpoint &&
      sameSet(existing.allowedIps, peer.allowedIps) &&
      existing.persistentKeepaliveSeconds === peer.persistentKeepaliveSeconds &&
      existing.presharedKey === (options.presharedKey ? "ours" : "none");
    if (!same) plan.set.push(peer);
  }
  if (options.removeUnknown) {
    for (const peer of actual) if (!wanted.has(peer.publicKey)) plan.remove.push(peer.publicKey);
  }
  return plan;
}
