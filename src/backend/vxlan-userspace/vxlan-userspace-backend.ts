import type { Backend, BackendContext } from "../backend.js";
import { EngineBackend, type EnginePlacement } from "../userspace/engine-backend.js";
import { readString, type JsonObject } from "../../codec/json-fields.js";
import { assertDeviceName } from "../../kernel/objects.js";
import { parseQueueOptions, type QueueOptions } from "../userspace/queue-options.js";
import type { Lease } from "../../lease/types.js";
import type { PeerRoute } from "../../engine/engine.js";
import type { Refusal } from "../peer-table.js";
import { formatVxlanBackendData, parseVxlanBackendData } from "../vxlan/backend-data.js";
import { VXLAN_OVERHEAD, parseVxlanOptions, type VxlanOptions } from "../vxlan/options.js";
import { persistMac, randomVtepMac, readPersistedMac } from "../vxlan/vtep-mac.js";
import { errorMessage } from "../../errors/error-message.js";

/**
 * vxlan in userspace: `"Backend": {"Type": "vxlan", "Userspace": true}`. Same wire format and
 * lease as the kernel backend (RFC 7348, port 8472, BackendData {"VNI","VtepMAC"}), so hosts of
 * both kinds form one cluster; the data path is weft's native engine on a TUN device instead
 * of a kernel vxlan device. For hosts where the vxlan module is unavailable or not allowed.
 *
 * The VtepMAC is kept in `<stateDir>/<TunName>.vtep-mac`, so peers keep reaching us after a
 * restart without re-reading our lease.
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

/** The engine route for a vxlan lease (the PeerTable has checked its type): its BackendData, our VNI. */
export function vxlanPeerRoute(vni: number) {
  return (lease: Lease): PeerRoute | Refusal => {
    try {
      const data = parseVxlanBackendData(lease.attrs.backendData, lease.key);
      if (data.vni !== vni) return { refused: `VNI ${data.vni} differs from ours (${vni})`, level: "warn" };
      return { subnet: lease.subnet, publicIP: lease.attrs.publicIP, vtepMac: data.vtepMAC };
    } catch (error) {
      return { refused: errorMessage(error), level: "warn" };
    }
  };
}

async function stableVtepMac(stateDir: string, tunName: string): Promise<string> {
  const saved = await readPersistedMac(stateDir, tunName);
  if (saved) return saved;
  const mac = randomVtepMac();
  await persistMac(stateDir, tunName, mac);
  return mac;
}

export function createUserspaceVxlanBackend(context: BackendContext, placement?: EnginePlacement): Backend {
  const options = parseUserspaceVxlanOptions(context.options);
  const mtu = (options.mtu ?? context.external.mtu) - VXLAN_OVERHEAD;
  return new EngineBackend(
    "vxlan",
    context,
    async () => {
      const mac = await stableVtepMac(context.stateDir, options.tunName);
      context.logger.info({ device: options.tunName, vtepMAC: mac, vni: options.vni }, "userspace vxlan: VTEP ready");
      return {
        registration: {
          attrs: { backendType: "vxlan", backendData: formatVxlanBackendData({ vni: options.vni, vtepMAC: mac }) },
          mtu,
        },
        engine: {
          mode: "vxlan", tunName: options.tunName, mtu, port: options.port, vni: options.vni, vtepMac: mac,
          queues: options.queues, sharedThread: options.sharedThread,
        },
        peerRoute: vxlanPeerRoute(options.vni),
      };
    },
    placement,
  );
}
