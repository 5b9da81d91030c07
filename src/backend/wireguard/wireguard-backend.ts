import type { Backend, BackendContext, BackendFactory } from "../backend.js";
import { EngineBackend, type EnginePlacement } from "../userspace/engine-backend.js";
import type { Lease } from "../../lease/types.js";
import type { PeerRoute, WireguardEngineOptions } from "../../engine/engine.js";
import { engineQueueOptions } from "../userspace/queue-options.js";
import type { Refusal } from "../peer-table.js";
import { errorMessage } from "../../errors/error-message.js";
import { formatWireguardBackendData, parseWireguardBackendData } from "./backend-data.js";
import { keyFilePath, loadOrCreateKey } from "./key-file.js";
import { WIREGUARD_OVERHEAD, parseWireguardOptions, type WireguardOptions } from "./options.js";
import { exportWireguardStatus } from "./wireguard-metrics.js";
import { peerIpv4Subnet, refuseIpv6OnlyNetwork } from "../ipv4-half.js";

/**
 * flannel's wireguard backend on weft's own userspace WireGuard (the native engine in
 * wireguard mode): the device `flannel-wg` addressed with the lease's subnet address as /32 and
 * the whole Network routed into it, one WireGuard peer per wireguard lease (its PublicKey, the
 * endpoint PublicIP:Port, AllowedIPs its subnet), MTU = MTU - 80, the lease's BackendData
 * `{"PublicKey","Port"}` and the key in $WIREGUARD_KEY_FILE (flanneld's file, so a host keeps its
 * key when it switches between flanneld and weft). Wire-compatible with flanneld's kernel
 * WireGuard peers.
 *
 * Kernel WireGuard (`Implementation: "kernel"`) is not implemented yet; "auto" runs the
 * userspace engine and says so in the log.
 */
export interface WireguardBackendHooks extends EnginePlacement {
  /** The key file; default $WIREGUARD_KEY_FILE or /run/flannel/wgkey. */
  keyFile?: string;
  /** For tests: shortened protocol timers. */
  timers?: WireguardEngineOptions["timers"];
}

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

function resolveImplementation(options: WireguardOptions): "userspace" {
  if (options.implementation === "kernel") {
    throw new Error('Backend.Implementation: "kernel" is not implemented yet by weft; use "userspace" or "auto"');
  }
  return "userspace";
}

export function createWireguardBackend(context: BackendContext, hooks: WireguardBackendHooks = {}): Backend {
  refuseIpv6OnlyNetwork(context.network, "wireguard");
  const options = parseWireguardOptions(context.options);
  const implementation = resolveImplementation(options);
  const mtu = (options.mtu ?? context.external.mtu) - WIREGUARD_OVERHEAD;
  const backend: EngineBackend = new EngineBackend(
    "wireguard",
    context,
    async () => {
      const key = await loadOrCreateKey(hooks.keyFile ?? keyFilePath());
      const publicKey = key.publicKey.toString("base64");
      context.logger.info(
        { device: options.tunName, publicKey, keyFile: key.path, keyCreated: key.created, listenPort: options.listenPort, implementation },
        "wireguard: weft's userspace WireGuard data path (the kernel path is not implemented)",
      );
      return {
        registration: {
          attrs: { backendType: "wireguard", backendData: formatWireguardBackendData({ publicKey, port: options.listenPort }) },
          mtu,
        },
        engine: {
          mode: "wireguard", tunName: options.tunName, mtu, port: options.listenPort, ...engineQueueOptions(options),
          wireguard: {
            privateKey: key.privateKey, presharedKey: options.presharedKey, persistentKeepaliveSeconds: options.persistentKeepaliveSeconds,
            timers: hooks.timers, logger: context.logger,
          },
        },
        peerRoute: wireguardPeerRoute(options.listenPort),
      };
    },
    hooks,
  );
  exportWireguardStatus(context.metrics, implementation, () => {
    const engine = backend.runningEngine;
    return engine && !engine.closed ? engine.wireguardStatus() : undefined;
  });
  return backend;
}

export const wireguardBackend: BackendFactory = {
  type: "wireguard",
  validateOptions(options) {
    resolveImplementation(parseWireguardOptions(options));
  },
  validateNetwork: (network) => refuseIpv6OnlyNetwork(network, "wireguard"),
  create: (context) => createWireguardBackend(context),
};
