import { readFile, rm, stat } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { readSnapshot, snapshotPath } from "../backend/userspace/datapath-snapshot.js";
import { handoverSocketPath, holderPidPath, readHolderPid } from "../engine/handover/fd-handover.js";
import { isWeftDevice } from "../kernel/kernel-events.js";
import { runningWireguardGo, stopWireguardGo, wireguardGoDevices, wireguardGoPidFile } from "../kernel/wireguard-go.js";
import { TrafficRules } from "../host/firewall/traffic-rules.js";
import { previousSubnet, readSubnetEnv } from "../host/subnet-env.js";
import { Kernel, type LinkState } from "../kernel/kernel.js";
import { describeObject, type KernelObject } from "../kernel/objects.js";
import { Ipv4Subnet } from "../net/ipv4.js";
import { Ipv6Subnet } from "../net/ipv6.js";
import { sameSubnet, subnetContains } from "../net/ip-subnet.js";
import { createLogger } from "../observe/logger.js";

/**
 * `weft cleanup`: removes what weft's kernel backends and traffic rules leave on a host after
 * the daemon stops (they stay on purpose, so restarts are hitless): the nftables table
 * `ip weft`, vxlan devices named flannel.<VNI> (their neighbours, FDB entries and routes go
 * with them), the userspace backends' persistent TUN (flannel0, weft.<VNI>) with the fd holder
 * and data path snapshot of --state-dir, the wireguard backend's device (a kernel `flannel-wg`,
 * or the wireguard-go weft started, by the PID file in --state-dir: its device goes with it),
 * and host-gw / DirectRouting routes inside the Network. The lease in etcd and the
 * subnet file are left alone: the lease expires by itself, or can be reused by a restart.
 */
interface CleanupArgs {
  network?: string;
  "subnet-file": string;
  /** yargs gives one value or a list, depending on how often the flag is repeated. */
  vni?: number | number[];
  "dry-run": boolean;
  "state-dir": string;
}

const VXLAN_NAME = /^flannel(?:-v6)?\.(\d+)$/;

export async function cleanupHost(
  options: {
    network?: Ipv4Subnet;
    ownSubnet?: Ipv4Subnet;
    /** A dual-stack network's IPv6Network and own IPv6 subnet: host-gw / DirectRouting IPv6 routes go too. */
    ipv6Network?: Ipv6Subnet;
    ownIpv6Subnet?: Ipv6Subnet;
    vnis?: readonly number[];
    dryRun: boolean;
    netns?: string;
    /** The daemon's --state-dir: its fd holder is stopped, its data path snapshot and the TUN it names removed. */
    stateDir?: string;
  },
): Promise<string[]> {
  const kernel = new Kernel(options.netns);
  const done: string[] = [];
  try {
    const rules = new TrafficRules(createLogger({ name: "weft-cleanup", level: "warn" }), { netns: options.netns });
    done.push("remove nftables tables ip weft and ip6 weft and the iptables and ip6tables WEFT-FWD chains with their jumps (if present)");
    if (!options.dryRun) await rules.remove();

    const links = await listVxlanLinks(kernel);
    for (const link of links) {
      const vni = Number(VXLAN_NAME.exec(link.ifname)?.[1]);
      if (options.vnis && options.vnis.length > 0 && !options.vnis.includes(vni)) continue;
      done.push(`remove device ${link.ifname} (vxlan id ${link.linkinfo?.info_data?.id ?? "?"}) with its neighbours, FDB entries and routes`);
      if (!options.dryRun) await kernel.ip([`link del dev ${link.ifname}`]);
    }

    done.push(...(await removeWireguardDevices(kernel, options.stateDir, options.dryRun)));

    // The snapshot names the device (a TunName of any name): read before it is removed.
    const snapshotDevice = options.stateDir === undefined ? undefined : await readSnapshot(options.stateDir).then((snapshot) => snapshot?.device).catch(() => undefined);
    if (options.stateDir !== undefined) done.push(...(await removeParkedDataPath(options.stateDir, options.dryRun)));
    for (const link of await listPersistentTuns(kernel, snapshotDevice)) {
      done.push(`remove persistent TUN device ${link.ifname} (a userspace backend's) with its addresses and routes`);
      if (!options.dryRun) await kernel.ip([`link del dev ${link.ifname}`]);
    }

    const families = [
      { family: 4 as const, network: options.network, own: options.ownSubnet },
      { family: 6 as const, network: options.ipv6Network, own: options.ownIpv6Subnet },
    ];
    for (const { family, network, own } of families) {
      if (!network) continue;
      // Routes via a gateway inside the Network are host-gw's or DirectRouting's; docker0's own
      // subnet route (no gateway, proto kernel) is never matched.
      const routes = (await kernel.readRoutes(family)).filter(
        (route) =>
          route.type === "unicast" &&
          route.protocol !== "kernel" &&
          route.gateway !== undefined &&
          subnetContains(network, route.destination) &&
          !(own && sameSubnet(route.destination, own)),
      );
      const objects: KernelObject[] = routes.map(({ destination, gateway, device, onlink }) => ({ kind: "route", destination, gateway, device, onlink }));
      for (const object of objects) done.push(`remove ${describeObject(object)}`);
      if (!options.dryRun) {
        const failures = await kernel.apply(objects.map((object) => ({ action: "remove" as const, object })));
        for (const failure of failures) done.push(`FAILED: ${failure.change}: ${failure.error}`);
      }
    }
    return done;
  } finally {
    await kernel.close();
  }
}

/** Persistent TUN devices by weft's names (flannel0, weft.1, …) or the one the snapshot names. */
async function listPersistentTuns(kernel: Kernel, snapshotDevice: string | undefined): Promise<LinkState[]> {
  const links: LinkState[] = [];
  for (const name of await kernel.listLinkNames()) {
    if (!isWeftDevice(name) && name !== snapshotDevice) continue;
    const link = await kernel.readLink(name);
    if (link?.linkinfo?.info_kind === "tun" && link.linkinfo.info_data?.persist === true) links.push(link);
  }
  return links;
}

/**
 * A stopped userspace daemon's fd holder (stopped by the pid it recorded, after checking that pid
 * is a holder), its socket and the data path snapshot.
 */
async function removeParkedDataPath(stateDir: string, dryRun: boolean): Promise<string[]> {
  const done: string[] = [];
  const pid = readHolderPid(stateDir);
  const command = pid === undefined ? "" : await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (pid !== undefined && command.includes("handover/holder.js")) {
    done.push(`stop the fd holder (pid ${pid}) keeping a stopped daemon's TUN and sockets open`);
    if (!dryRun) process.kill(pid, "SIGTERM");
  }
  for (const path of [snapshotPath(stateDir), handoverSocketPath(stateDir), holderPidPath(stateDir)]) {
    const exists = await stat(path).then(() => true, () => false);
    if (!exists) continue;
    done.push(`remove ${path}`);
    if (!dryRun) await rm(path, { force: true });
  }
  return done;
}

/** wireguard-go processes weft started (PID files in the state dir), then kernel wireguard devices by weft's names. */
async function removeWireguardDevices(kernel: Kernel, stateDir: string | undefined, dryRun: boolean): Promise<string[]> {
  const done: string[] = [];
  for (const device of stateDir === undefined ? [] : await wireguardGoDevices(stateDir)) {
    const pid = await runningWireguardGo(stateDir as string, device);
    done.push(pid === undefined ? `remove ${wireguardGoPidFile(stateDir as string, device)} (its wireguard-go has exited)` : `stop wireguard-go (pid ${pid}) and with it device ${device}`);
    if (!dryRun) await stopWireguardGo(stateDir as string, device);
  }
  for (const name of (await kernel.listLinkNames()).filter(isWeftDevice)) {
    const link = await kernel.readLink(name);
    if (link?.linkinfo?.info_kind !== "wireguard") continue;
    done.push(`remove WireGuard device ${name} with its peers, addresses and routes`);
    if (!dryRun) await kernel.ip([`link del dev ${name}`]);
  }
  return done;
}

async function listVxlanLinks(kernel: Kernel): Promise<LinkState[]> {
  const names = await kernel.listLinkNames();
  const links: LinkState[] = [];
  for (const name of names.filter((candidate) => VXLAN_NAME.test(candidate))) {
    const link = await kernel.readLink(name);
    if (link?.linkinfo?.info_kind === "vxlan") links.push(link);
  }
  return links;
}

export const cleanupCommand: CommandModule<object, CleanupArgs> = {
  command: "cleanup",
  describe: "remove weft's kernel state from this host: nftables table, flannel.<VNI> devices, persistent TUNs, the WireGuard device (and weft's wireguard-go), host-gw routes",
  builder: (yargs: Argv) =>
    yargs
      .option("network", { type: "string", describe: "the flannel Network (default: FLANNEL_NETWORK from --subnet-file); its gateway routes are removed" })
      .option("subnet-file", { type: "string", default: "/run/flannel/subnet.env", describe: "the daemon's subnet file" })
      .option("vni", { type: "number", array: true, describe: "only remove flannel.<VNI> for these VNIs (default: every flannel.N vxlan device)" })
      .option("state-dir", { type: "string", default: "/var/lib/weft", describe: "the daemon's --state-dir (a userspace backend's fd holder and data path snapshot, the wireguard-go weft started)" })
      .option("dry-run", { type: "boolean", default: false, describe: "print what would be removed" }),
  handler: async (args) => {
    const env = await readSubnetEnv(args["subnet-file"]).catch(() => undefined);
    const network = args.network !== undefined ? Ipv4Subnet.parse(args.network, "--network") : env?.network;
    const ownSubnet = env ? previousSubnet(env) : undefined;
    const ipv6Network = env?.ipv6Network === undefined ? undefined : Ipv6Subnet.tryParse(env.ipv6Network);
    const ownIpv6Subnet = env?.ipv6Subnet === undefined ? undefined : Ipv6Subnet.tryParse(env.ipv6Subnet);
    const vnis = args.vni === undefined ? [] : [args.vni].flat();
    const done = await cleanupHost({ network, ownSubnet, ipv6Network, ownIpv6Subnet, vnis, dryRun: args["dry-run"], stateDir: args["state-dir"] });
    const lines = done.map((line) => `${args["dry-run"] ? "would " : ""}${line}`);
    if (!network) lines.push(`routes left alone: no --network given and no FLANNEL_NETWORK in ${args["subnet-file"]}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  },
};
