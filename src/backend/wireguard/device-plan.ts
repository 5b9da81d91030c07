import type { WgPeerConfig, WgPeerState } from "../../kernel/wireguard-device.js";
import type { Ipv4Subnet } from "../../net/ipv4.js";
import { tryParseIpv6, type Ipv6Subnet } from "../../net/ipv6.js";
import type { WireguardDevicePeer, WireguardPeerHalf } from "./peer-route.js";

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
  /**
   * Keys of `set` peers that take a lease's subnet over from another key on the device (the
   * lease's host rotated its key, and holds the new one before its lease says so): the device
   * initiates to them at once. The rotated host's own first handshake may have reached us before
   * we knew its key, and WireGuard would not try again for REKEY_TIMEOUT (5 s).
   */
  initiate: string[];
}

/** Which family's address a single-device peer is reached at (flanneld's Mode "ipv4"/"ipv6", or chosen per peer). */
export type EndpointFamily = "ipv4" | "ipv6";

/** This host's underlay addresses as flanneld's selectMode weighs them (ExtAddr, ExtV6Addr). */
export interface OwnUnderlay {
  ipv4: string | undefined;
  ipv6: string | undefined;
}

/**
 * What one device carries, and how a peer's endpoint is found on it:
 *   - "ipv4": flannel-wg in Mode "separate" (or an IPv4-only network): the IPv4 halves;
 *   - "ipv6": flannel-wg-v6 in Mode "separate": the IPv6 halves, endpoint [PublicIPv6]:Port;
 *   - "both": Modes "auto", "ipv4", "ipv6" on a dual-stack network: one peer with both subnets.
 * `listenPort` is the port assumed for a lease that advertises none (flanneld: the device's own).
 */
export type DeviceCarriage =
  | { families: "ipv4" | "ipv6"; listenPort: number }
  | { families: "both"; listenPort: number; endpoint: EndpointFamily | "auto"; own: OwnUnderlay };

/** RFC 1918, as flannel's ip.IP4.IsPrivate. */
function isPrivateIpv4(address: string): boolean {
  const [a, b] = address.split(".").map(Number) as [number, number];
  return a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168);
}

/** RFC 4193 (fc00::/7), as flannel's ip.IP6.IsPrivate. */
function isPrivateIpv6(address: string): boolean {
  const value = tryParseIpv6(address);
  return value !== undefined && value >> 121n === 0x7en;
}

/**
 * flanneld's selectMode for Mode "auto": IPv4 when the peer's PublicIP is public and we have an
 * IPv4 underlay address; else IPv6 when the peer's PublicIPv6 and ours are both public (not ULA);
 * else IPv4. A peer without an IPv6 half is reached over IPv4.
 */
export function selectEndpointFamily(peer: WireguardDevicePeer, own: OwnUnderlay): EndpointFamily {
  if (!peer.v6) return "ipv4";
  if (peer.v4 && !isPrivateIpv4(peer.v4.address) && own.ipv4 !== undefined) return "ipv4";
  if (!isPrivateIpv6(peer.v6.address) && own.ipv6 !== undefined && !isPrivateIpv6(own.ipv6)) return "ipv6";
  return "ipv4";
}

function endpointOf(half: WireguardPeerHalf<Ipv4Subnet | Ipv6Subnet>, family: EndpointFamily, port: number): string {
  return family === "ipv6" ? `[${half.address}]:${port}` : `${half.address}:${port}`;
}

/**
 * The device configuration of a served peer on a device that carries `carriage`, or undefined
 * when the peer has nothing this device carries (a single-stack host on flannel-wg-v6).
 * On one device for both families the port is BackendData's: that device listens on ListenPort
 * for both, and flanneld (unlike weft) advertises ListenPortV6 in BackendV6Data even then.
 */
export function devicePeerConfig(peer: WireguardDevicePeer, carriage: DeviceCarriage, persistentKeepaliveSeconds: number): WgPeerConfig | undefined {
  if (carriage.families !== "both") {
    const half = carriage.families === "ipv4" ? peer.v4 : peer.v6;
    if (!half) return undefined;
    return {
      publicKey: half.publicKey, endpoint: endpointOf(half, carriage.families, half.port ?? carriage.listenPort),
      allowedIps: [half.subnet.toString()], persistentKeepaliveSeconds,
    };
  }
  const chosen = carriage.endpoint === "auto" ? selectEndpointFamily(peer, carriage.own) : carriage.endpoint;
  const family: EndpointFamily = chosen === "ipv6" && peer.v6 ? "ipv6" : peer.v4 ? "ipv4" : "ipv6";
  const half = family === "ipv6" ? peer.v6 : peer.v4;
  if (!half) return undefined;
  const port = peer.v4?.port ?? peer.v6?.port ?? carriage.listenPort;
  const allowedIps = [peer.v4, peer.v6].flatMap((each) => (each ? [each.subnet.toString()] : []));
  return { publicKey: half.publicKey, endpoint: endpointOf(half, family, port), allowedIps, persistentKeepaliveSeconds };
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
  const keyOfAllowedIp = new Map(actual.flatMap((peer) => peer.allowedIps.map((allowed) => [allowed, peer.publicKey] as const)));
  const wanted = new Set<string>();
  const plan: DevicePeerPlan = { set: [], remove: [], initiate: [] };
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
    if (!existing && peer.allowedIps.some((allowed) => keyOfAllowedIp.has(allowed))) plan.initiate.push(peer.publicKey);
  }
  if (options.removeUnknown) {
    for (const peer of actual) if (!wanted.has(peer.publicKey)) plan.remove.push(peer.publicKey);
  }
  return plan;
}

/** REJECT_AFTER_TIME: a handshake older than this left no session. */
const SESSION_LIFETIME_SECONDS = 180;

/**
 * After a key rotation: the desired peers that had a session when the key changed (a handshake
 * in `before`, the device's peers then, younger than REJECT_AFTER_TIME at `rotatedAtSeconds`)
 * and have made no handshake since (the same latest handshake in `now`). Their peers did not
 * initiate to the new key (flanneld's initiate on their next packet), and our own first attempt
 * may have gone out before they knew it: the device is made to try again at once.
 */
export function peersToReinitiate(
  before: readonly WgPeerState[],
  now: readonly WgPeerState[],
  desired: readonly WgPeerConfig[],
  rotatedAtSeconds: number,
): WgPeerConfig[] {
  const handshakeBefore = new Map(before.map((peer) => [peer.publicKey, peer.latestHandshakeSeconds]));
  const handshakeNow = new Map(now.map((peer) => [peer.publicKey, peer.latestHandshakeSeconds]));
  return desired.filter((peer) => {
    const then = handshakeBefore.get(peer.publicKey);
    if (then === undefined || then === 0 || rotatedAtSeconds - then >= SESSION_LIFETIME_SECONDS) return false;
    return handshakeNow.get(peer.publicKey) === then;
  });
}
