import type { Logger } from "pino";
import type { Kernel, LinkState } from "../../kernel/kernel.js";
import { networkAddressText, subnetContains, subnetFamily, tryCanonicalIp, tryParseIpSubnet, type IpSubnet } from "../../net/ip-subnet.js";
import { persistMac, randomVtepMac, readPersistedMac, renewPersistedMac } from "./vtep-mac.js";
import { setTxChecksumOffload, txChecksumOffloadOn } from "../../kernel/tx-checksum.js";
import { AcceptRaReadOnlyError, acceptRa, disableAcceptRa } from "../../kernel/accept-ra.js";
import type { DeviceChange } from "../reconcile-report.js";
/** Devices whose accept_ra cannot be written here (read-only /proc/sys): warned about once, not retried. */
const readOnlyAcceptRa = new Set<string>();

/** What flannel.<VNI> (IPv4 underlay) or flannel-v6.<VNI> (IPv6 underlay) must look like (flannel-compat §6). */
export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  port: number;
  /** Underlay source address (`local`), canonical; its family is the underlay's. */
  local: string;
  /** Underlay interface (`dev`). */
  underlay: string;
  learning: boolean;
  gbp: boolean;
  mtu: number;
  /** false: keep tx checksum offload off on the device (kernel/NIC checksum bugs). */
  txChecksumOffload: boolean;
}

/** Why an existing device cannot be reused, or undefined when it can (keeping its MAC). */
export function incompatibility(link: LinkState, spec: VxlanDeviceSpec): string | undefined {
  const info = link.linkinfo;
  if (info?.info_kind !== "vxlan") return `it is a ${info?.info_kind ?? "non-vxlan"} device, not vxlan`;
  const data = info.info_data ?? {};
  if (data.id !== spec.vni) return `its VNI is ${data.id}, not ${spec.vni}`;
  const local = data.local ?? data.local6;
  if ((local === undefined ? undefined : tryCanonicalIp(local)?.text) !== spec.local) return `its local address is ${local ?? "unset"}, not ${spec.local}`;
  if (data.link !== spec.underlay) return `its underlay device is ${data.link ?? "unset"}, not ${spec.underlay}`;
  if (data.port !== spec.port) return `its port is ${data.port}, not ${spec.port}`;
  if ((data.learning ?? false) !== spec.learning) return `learning is ${data.learning ? "on" : "off"}, config says ${spec.learning ? "on" : "off"}`;
  if ((data.gbp ?? false) !== spec.gbp) return `GBP is ${data.gbp ? "on" : "off"}, config says ${spec.gbp ? "on" : "off"}`;
  if (data.group !== undefined || data.remote !== undefined || data.group6 !== undefined || data.remote6 !== undefined) {
    return "it has a multicast group or fixed remote";
  }
  if (data.l2miss || data.l3miss) return "it has l2miss/l3miss set";
  return undefined;
}

export interface VxlanDeviceCheck {
  /** Changes needed (dry run) or made. */
  changes: DeviceChange[];
  /** Dry run: the device is missing or must be re-created, so nothing on it can be read yet. */
  absent: boolean;
  mac: string;
}

/**
 * Makes the device exist as specified: reuses a compatible one (keeping its MAC, as flannel
 * does), otherwise creates it with the MAC saved in `stateDir` (or a new one, then saved).
 */
export async function ensureVxlanDevice(
  kernel: Kernel,
  spec: VxlanDeviceSpec,
  stateDir: string,
  logger: Logger,
  dryRun = false,
): Promise<VxlanDeviceCheck> {
  const changes: DeviceChange[] = [];
  let link = await kernel.readLink(spec.name);
  let recreating = false;
  if (link) {
    const reason = incompatibility(link, spec);
    if (reason !== undefined) {
      changes.push({ action: "recreate-device", device: spec.name, reason });
      if (!dryRun) {
        logger.warn({ device: spec.name, reason }, "existing vxlan device is incompatible with the config; recreating it");
        await kernel.ip([`link del dev ${spec.name}`]);
        await kernel.resetBatches();
      }
      link = undefined;
      recreating = true;
    }
  }
  const saved = await readPersistedMac(stateDir, spec.name);
  let mac: string;
  if (!link) {
    mac = saved ?? randomVtepMac();
    if (!recreating) changes.push({ action: "create-device", device: spec.name, vni: spec.vni, mac });
    if (dryRun) return { changes, absent: true, mac };
    const options = [
      `id ${spec.vni}`,
      `local ${spec.local}`,
      `dev ${spec.underlay}`,
      `dstport ${spec.port}`,
      spec.learning ? "learning" : "nolearning",
      ...(spec.gbp ? ["gbp"] : []),
    ];
    await kernel.ip([`link add name ${spec.name} address ${mac} mtu ${spec.mtu} type vxlan ${options.join(" ")}`]);
    await kernel.resetBatches(); // the batch processes may hold the index of a device that had this name
    logger.info({ device: spec.name, mac, vni: spec.vni, local: spec.local, underlay: spec.underlay }, "created vxlan device");
  } else {
    mac = link.address.toLowerCase();
  }
  if (saved !== mac && !dryRun) await persistMac(stateDir, spec.name, mac);

  const current = link ?? (await kernel.readLink(spec.name));
  const lines: string[] = [];
  if (current?.mtu !== spec.mtu) {
    lines.push(`link set dev ${spec.name} mtu ${spec.mtu}`);
    if (link) changes.push({ action: "set-mtu", device: spec.name, mtu: spec.mtu, was: link.mtu });
  }
  if (!current?.flags.includes("UP")) {
    lines.push(`link set dev ${spec.name} up`);
    if (link) changes.push({ action: "set-up", device: spec.name });
  }
  if (!dryRun && lines.length > 0) await kernel.ip(lines);
  // flannel sets accept_ra 0 on both devices; undefined: the kernel runs without IPv6.
  const ra = await acceptRa(spec.name, kernel.netns);
  if (ra !== undefined && ra !== 0 && !readOnlyAcceptRa.has(spec.name)) {
    if (link) changes.push({ action: "disable-accept-ra", device: spec.name, was: ra });
    if (!dryRun) {
      try {
        await disableAcceptRa(spec.name, kernel.netns);
      } catch (error) {
        if (!(error instanceof AcceptRaReadOnlyError)) throw error;
        // Defence in depth only (forwarding does not depend on it): say so once, and go on.
        readOnlyAcceptRa.add(spec.name);
        logger.warn(
          { device: spec.name, err: error },
          `${error.message}; router advertisements stay as the host has them on ${spec.name} (under systemd, ProtectKernelTunables= makes /proc/sys read-only: set net.ipv6.conf.default.accept_ra=0 before weft starts, or allow ReadWritePaths=/proc/sys/net/ipv6/conf)`,
        );
      }
    }
  }
  // Only the "off" request is enforced: with the default, whatever the host set is left alone.
  if (!spec.txChecksumOffload && (await txChecksumOffloadOn(spec.name, kernel.netns))) {
    changes.push({ action: "disable-tx-checksum", device: spec.name });
    if (!dryRun) await setTxChecksumOffload(spec.name, false, kernel.netns);
  }
  return { changes, absent: false, mac };
}

/**
 * Gives the device a new random MAC and saves it (a peer advertised ours: a cloned state dir).
 * vxlan devices change their address while up; the FDB and neighbours of peers follow our lease.
 */
export async function renewVxlanMac(kernel: Kernel, spec: VxlanDeviceSpec, stateDir: string, logger: Logger): Promise<string> {
  const mac = await renewPersistedMac(stateDir, spec.name);
  await kernel.ip([`link set dev ${spec.name} address ${mac}`]);
  logger.warn({ device: spec.name, mac }, `took a new VtepMAC ${mac} for ${spec.name}`);
  return mac;
}

/**
 * Makes the own lease's network address (/32, IPv6 /128) the device's only address of its family
 * inside the Network, as flannel does (flannel.N: the IPv4 lease subnet; flannel-v6.N: the IPv6
 * one); addresses outside the Network (link-local ones, say) are left alone.
 */
export async function ensureVxlanAddress(
  kernel: Kernel,
  device: string,
  ownSubnet: IpSubnet,
  network: IpSubnet,
  dryRun = false,
): Promise<DeviceChange[]> {
  const family = subnetFamily(ownSubnet);
  const wanted = `${networkAddressText(ownSubnet)}/${family === 4 ? 32 : 128}`;
  const addresses = await kernel.readAddresses(device, family);
  const changes: DeviceChange[] = [];
  const lines: string[] = [];
  if (!addresses.some(({ address, prefixLength }) => `${address}/${prefixLength}` === wanted)) {
    // Add before removing: a device left without an address of the family loses every route through it.
    changes.push({ action: "add-address", device, address: wanted });
    lines.push(`addr replace ${wanted} dev ${device}`);
  }
  for (const { address, prefixLength } of addresses) {
    const text = `${address}/${prefixLength}`;
    const host = tryParseIpSubnet(address, family);
    if (text !== wanted && host !== undefined && subnetContains(network, host)) {
      changes.push({ action: "remove-address", device, address: text });
      lines.push(`addr del ${text} dev ${device}`);
    }
  }
  if (!dryRun && lines.length > 0) await kernel.ip(lines);
  return changes;
}
