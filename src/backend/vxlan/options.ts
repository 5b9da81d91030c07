import { readBoolean, readInteger, type JsonObject } from "../../codec/json-fields.js";

/** The vxlan Backend options of the network config (flannel-compat §1.3), defaults applied. */
export interface VxlanOptions {
  vni: number;
  /** UDP destination port; flannel's 0 means the kernel default, which is 8472 on Linux. */
  port: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
  /** Backend.MTU: the underlay MTU to assume instead of the external interface's (HEAD). */
  mtu?: number;
  /** weft extension: run the vxlan data path in userspace instead of the kernel device. */
  userspace: boolean;
  /** weft extension: false turns tx checksum offload off on flannel.<VNI> (see kernel/tx-checksum.ts). */
  txChecksumOffload: boolean;
}

export const DEFAULT_VXLAN_PORT = 8472;
/** Outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 (flannel-compat §3.3); flannel uses 50 for IPv6 too. */
export const VXLAN_OVERHEAD = 50;
/**
 * Outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14. flanneld asks for an MTU of E − 50 on
 * flannel-v6.<VNI> as well, but the kernel clamps a vxlan device over an IPv6 underlay to
 * E − 70, so that is the MTU flanneld's device has and the one weft sets (and keeps).
 */
export const VXLAN_V6_OVERHEAD = 70;

export function parseVxlanOptions(options: JsonObject): VxlanOptions {
  const vni = readInteger(options, "VNI", "Backend.VNI", { min: 0, max: 16_777_215 }) ?? 1;
  const port = readInteger(options, "Port", "Backend.Port", { min: 0, max: 65_535 }) ?? 0;
  const mtu = readInteger(options, "MTU", "Backend.MTU", { min: VXLAN_OVERHEAD + 68, max: 65_535 });
  // Unknown keys are ignored, as flanneld does.
  return {
    vni,
    port: port === 0 ? DEFAULT_VXLAN_PORT : port,
    gbp: readBoolean(options, "GBP", "Backend.GBP") ?? false,
    learning: readBoolean(options, "Learning", "Backend.Learning") ?? false,
    directRouting: readBoolean(options, "DirectRouting", "Backend.DirectRouting") ?? false,
    mtu,
    userspace: readBoolean(options, "Userspace", "Backend.Userspace") ?? false,
    txChecksumOffload: readBoolean(options, "TxChecksumOffload", "Backend.TxChecksumOffload") ?? true,
  };
}

/** flannel's device name: flannel.<VNI>. */
export function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

/** flannel's device over the IPv6 underlay of a dual-stack network: flannel-v6.<VNI>. */
export function vxlanV6DeviceName(vni: number): string {
  return `flannel-v6.${vni}`;
}
