import type { Endpoint, WireguardSessions } from "./sessions.js";

/**
 * One logical WireGuard interface's AllowedIPs seen from the peer side: which peer key each
 * routed subnet names, so that a key's sessions go (zeroed in the engine) as soon as no subnet
 * routes to it any more, and a subnet whose key changed (a rotation) handshakes the new key at
 * once rather than on the next packet (which may be the other side's, sent on a session just
 * dropped). The engine has one per interface: flanneld's flannel-wg and, in Mode "separate",
 * flannel-wg-v6, each with its own sessions even for the same key.
 */
export class RoutedPeers {
  private readonly subnetKeys = new Map<string, string>();

  constructor(readonly sessions: WireguardSessions) {}

  /**
   * The peer `publicKey` (base64) at `endpoint` gets or keeps its session state; `program(id)`
   * points the subnet's engine route at it before an older key of that subnet is dropped.
   */
  route(subnet: string, publicKey: Buffer, endpoint: Endpoint, program: (id: number) => void): void {
    const id = this.sessions.upsertPeer(publicKey, endpoint);
    program(id);
    const name = publicKey.toString("base64");
    const previous = this.subnetKeys.get(subnet);
    this.subnetKeys.set(subnet, name);
    if (previous !== undefined && previous !== name) {
      this.dropUnrouted(previous);
      this.sessions.handle({ kind: "want", peer: id });
    }
  }

  /** The subnet no longer routes here (its engine route is already gone). */
  unroute(subnet: string): void {
    const key = this.subnetKeys.get(subnet);
    this.subnetKeys.delete(subnet);
    if (key !== undefined) this.dropUnrouted(key);
  }

  private dropUnrouted(key: string): void {
    if ([...this.subnetKeys.values()].includes(key)) return;
    this.sessions.removePeer(Buffer.from(key, "base64"));
  }
}
