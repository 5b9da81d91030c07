import type { Lease } from "../../lease/types.js";
import type { PeerRoute } from "../../engine/engine.js";
import type { Refusal } from "../peer-table.js";
import { errorMessage } from "../../errors/error-message.js";
import { peerIpv4Subnet } from "../ipv4-half.js";
import { parseWireguardBackendData } from "./backend-data.js";

/**
 * The WireGuard peer a wireguard lease describes, for every implementation: its subnet (the
 * AllowedIPs), PublicIP and Port (the endpoint; our own ListenPort when an older flanneld wrote
 * no Port) and PublicKey; or why the lease cannot be served.
 */
export function wireguardPeerRoute(ourPort: number) {
  return (lease: Lease): PeerRoute | Refusal => {
    try {
      const subnet = peerIpv4Subnet(lease, "wireguard");
      if ("refused" in subnet) return subnet;
      const data = parseWireguardBackendData(lease.attrs.backendData, lease.key);
      return { subnet, publicIP: lease.attrs.publicIP, publicKey: data.publicKey, port: data.port ?? ourPort };
    } catch (error) {
      return { refused: errorMessage(error), level: "warn" };
    }
  };
}
