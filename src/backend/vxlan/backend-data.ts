import { isJsonObject, readField } from "../../codec/json-fields.js";
import { normalizeMac } from "../../net/mac.js";

/** A vxlan lease's BackendData: `{"VNI":1,"VtepMAC":"6a:96:90:47:79:a6"}` (flannel-compat §1.3, key order as flannel). */
export interface VxlanBackendData {
  vni: number;
  vtepMAC: string;
}

export function formatVxlanBackendData(data: VxlanBackendData): { VNI: number; VtepMAC: string } {
  return { VNI: data.vni, VtepMAC: data.vtepMAC };
}

/**
 * Parses BackendData (or, `field` "BackendV6Data", the flannel-v6 device's) of a peer's lease;
 * `where` names the lease key in errors.
 */
export function parseVxlanBackendData(value: unknown, where: string, field: "BackendData" | "BackendV6Data" = "BackendData"): VxlanBackendData {
  if (!isJsonObject(value)) throw new Error(`${where}: ${field} ${JSON.stringify(value)} is not an object with VNI and VtepMAC`);
  const vni = readField(value, "VNI");
  const mac = readField(value, "VtepMAC");
  if (typeof vni !== "number" || !Number.isInteger(vni) || vni < 0) {
    throw new Error(`${where}: ${field}.VNI ${JSON.stringify(vni)} is not a VNI`);
  }
  if (typeof mac !== "string") throw new Error(`${where}: ${field}.VtepMAC ${JSON.stringify(mac)} is not a MAC address`);
  return { vni, vtepMAC: normalizeMac(mac, `${where}: ${field}.VtepMAC`) };
}
