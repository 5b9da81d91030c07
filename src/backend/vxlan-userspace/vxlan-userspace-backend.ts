import type { Backend, BackendContext, BackendRegistration } from "../backend.js";
import { EngineBackend, type EnginePlacement } from "../userspace/engine-backend.js";
import { readString, type JsonObject } from "../../codec/json-fields.js";
import { assertDeviceName } from "../../kernel/objects.js";
import { engineQueueOptions, parseQueueOptions, type QueueOptions } from "../userspace/queue-options.js";
import type { Lease } from "../../lease/types.js";
import type { PeerRoute } from "../../engine/engine.js";
import type { Refusal } from "../peer-table.js";
import { formatVxlanBackendData, parseVxlanBackendData } from "../vxlan/backend-data.js";
import { VXLAN_OVERHEAD, VXLAN_V6_OVERHEAD, parseVxlanOptions, type VxlanOptions } from "../vxlan/options.js";
import { persistMac, randomVtepMac, readPersistedMac, renewPersistedMac } from "../vxlan/vtep-mac.js";
import { errorMessage } from "../../errors/error-message.js";
import { parseIpv6 } from "../../net/ipv6.js";
import { peerIpv4Subnet, refuseIpv6OnlyNetwork } from "../ipv4-half.js";

/**
 * vxlan in userspace: `"Backend": {"Type": "vxlan", "Userspace": true}`. Same wire format and
 * lease as the kernel backend (RFC 7348, port 8472, BackendData {"VNI","VtepMAC"}), so hosts of
 * both kinds form one cluster; the data path is weft's native engine on a TUN device instead
 * of a kernel vxlan device. For hosts where the vxlan module is unavailable or not allowed.
 *
 * The VtepMAC is kept in `<stateDir>/<TunName>.vtep-mac`, so peers keep reaching us after a
 * restart without re-reading our lease.
 *
 * Dual-stack (EnableIPv6, and the external interface has an IPv6 address): the same TUN and
 * engine also carry IPv6, over an IPv6 underlay socket to each peer's PublicIPv6, exactly what a
 * kernel flannel-v6.<VNI> device sends and expects. The lease advertises BackendV6Data
 * {"VNI","VtepMAC"} with the same VtepMAC (flanneld's two devices have two MACs, but a peer keeps
 * them in two separate neighbour/FDB tables, so one MAC serves both here).
 */
export interface UserspaceVxlanOptions extends VxlanOptions, QueueOptions {
  /** The TUN device; default "weft.<VNI>" (not flannel.<VNI>: a kernel device of that name may persist). */
  tunName: string;
}

export function parseUserspaceVxlanOptions(options: JsonObject): UserspaceVxlanOptions {
  const vxlan = parseVxlanOptions(options);
  if (vxlan.gbp) throw new Error("Backend.GBP: not supported by the userspace vxlan data path; remove it or Userspace");
  if (vxlan.learning) throw new Error("Backend.Learning: not supported by the userspace vxlan data path; remove it or Userspace");
  if (vxlan.directRouting) {
    throw new Error("Backend.DirectRouting: not supported by the userspace vxlan data path; remove it or Userspace");
  }
  const tunName = readString(options, "TunName", "Backend.TunName") ?? `weft.${vxlan.vni}`;
  assertDeviceName(tunName.replace("%d", "0"), "Backend.TunName");
  return { ...vxlan, tunName, ...parseQueueOptions(options) };
}

/** Throws naming the field, like every validateOptions. */
export function validateUserspaceVxlanOptions(options: JsonObject): void {
  parseUserspaceVxlanOptions(options);
}

/**
 * The engine route for a vxlan lease (the PeerTable has checked its type): its BackendData, our
 * VNI. With `ipv6` (we forward IPv6) a dual-stack lease's IPv6 subnet is routed to its
 * PublicIPv6 and BackendV6Data's VtepMAC; a lease without them is served over IPv4 only (a
 * single-stack peer). A dual-stack lease whose IPv6 half is unusable is refused as a whole, as
 * flanneld skips a lease whose BackendV6Data it cannot decode.
 */
export function vxlanPeerRoute(vni: number, ipv6 = false) {
  return (lease: Lease): PeerRoute | Refusal => {
    try {
      const subnet = peerIpv4Subnet(lease, "userspace vxlan");
      if ("refused" in subnet) return subnet;
      const data = parseVxlanBackendData(lease.attrs.backendData, lease.key);
      if (data.vni !== vni) return { refused: `VNI ${data.vni} differs from ours (${vni})`, level: "warn" };
      const route: PeerRoute = { subnet, publicIP: lease.attrs.publicIP, vtepMac: data.vtepMAC };
      if (!ipv6 || !lease.ipv6Subnet) return route;
      if (!lease.attrs.publicIPv6) {
        return { refused: `lease ${lease.key} has IPv6 subnet ${lease.ipv6Subnet} but no PublicIPv6`, level: "warn" };
      }
      const v6 = parseVxlanBackendData(lease.attrs.backendV6Data, `${lease.key} BackendV6Data`);
      if (v6.vni !== vni) return { refused: `lease ${lease.key}: BackendV6Data VNI ${v6.vni} differs from ours (${vni})`, level: "warn" };
      parseIpv6(lease.attrs.publicIPv6, `${lease.key} PublicIPv6`);
      return { ...route, ipv6: { subnet: lease.ipv6Subnet, publicIPv6: lease.attrs.publicIPv6, vtepMac: v6.vtepMAC } };
    } catch (error) {
      return { refused: errorMessage(error), level: "warn" };
    }
  };
}

/** The engine backend in vxlan mode, which can take a new VtepMAC (the engine is re-opened with it). */
class UserspaceVxlanBackend extends EngineBackend {
  async renewVtepMac(): Promise<BackendRegistration["attrs"]> {
    const tunName = parseUserspaceVxlanOptions(this.context.options).tunName;
    const mac = await renewPersistedMac(this.context.stateDir, tunName);
    this.context.logger.warn({ device: tunName, vtepMAC: mac }, `took a new VtepMAC ${mac}; re-opening the engine with it`);
    return this.prepareAgain();
  }
}

async function stableVtepMac(stateDir: string, tunName: string): Promise<string> {
  const saved = await readPersistedMac(stateDir, tunName);
  if (saved) return saved;
  const mac = randomVtepMac();
  await persistMac(stateDir, tunName, mac);
  return mac;
}

export function createUserspaceVxlanBackend(context: BackendContext, placement?: EnginePlacement): Backend {
  refuseIpv6OnlyNetwork(context.network, "userspace vxlan");
  const options = parseUserspaceVxlanOptions(context.options);
  const underlayMtu = options.mtu ?? context.external.mtu;
  const ipv6 = context.network.ipv6 !== undefined && context.external.addressV6 !== undefined;
  // As the kernel vxlan backend: one container MTU serves both families, so a dual-stack host
  // gives the smaller one (the IPv6 underlay's E − 70), and no container packet needs a Packet Too Big.
  const mtu = underlayMtu - (ipv6 ? VXLAN_V6_OVERHEAD : VXLAN_OVERHEAD);
  if (context.network.ipv6 && !ipv6) {
    context.logger.warn(
      { interface: context.external.name },
      "userspace vxlan: EnableIPv6 is set but the external interface has no IPv6 address; IPv6 is not forwarded (give it one, or set --public-ipv6 and --iface)",
    );
  }
  return new UserspaceVxlanBackend(
    "vxlan",
    context,
    async () => {
      const mac = await stableVtepMac(context.stateDir, options.tunName);
      context.logger.info({ device: options.tunName, vtepMAC: mac, vni: options.vni }, "userspace vxlan: VTEP ready");
      return {
        registration: {
          attrs: {
            backendType: "vxlan",
            backendData: formatVxlanBackendData({ vni: options.vni, vtepMAC: mac }),
            ...(ipv6 ? { backendV6Data: formatVxlanBackendData({ vni: options.vni, vtepMAC: mac }) } : {}),
          },
          mtu,
        },
        engine: {
          mode: "vxlan", tunName: options.tunName, mtu, port: options.port, vni: options.vni, vtepMac: mac,
          ...engineQueueOptions(options),
          // The IPv6 path MTU; a packet over it (a peer's larger MTU, a hand-set route) gets an
          // ICMPv6 packet too big from the engine.
          ...(ipv6 ? { mtuV6: underlayMtu - VXLAN_V6_OVERHEAD } : {}),
        },
        forwardsIpv6: ipv6,
        peerRoute: vxlanPeerRoute(options.vni, ipv6),
        handover: true,
      };
    },
    placement,
  );
}
