import type { Logger } from "pino";
import { subnetContains, tryParseIpSubnet, type IpSubnet } from "../net/ip-subnet.js";
import { LineMonitor } from "../process/line-monitor.js";

/**
 * Kernel events as a trigger only: one long-lived `ip -o monitor label link address route neigh`
 * (one line per netlink notification, both families; vxlan FDB entries arrive as NEIGH lines on
 * the vxlan device) tells the daemon that something it owns may have changed, so it reconciles
 * at once instead of at the next periodic pass. Nothing is read from the lines beyond what decides
 * whether a pass is worth it: the pass itself reads the kernel's state, as the periodic one does.
 */

export type KernelEventObject = "link" | "address" | "route" | "neigh";

export interface KernelEvent {
  object: KernelEventObject;
  /** A `Deleted …` line. */
  deleted: boolean;
  /** The device the object is on (the link itself for link events). */
  device: string | undefined;
  /** Route destination ("default", "10.66.2.0/24", "fd66:0:0:2::/64"), neighbour address, or the address (CIDR). */
  target: string | undefined;
  /** Neighbour: a permanent entry (weft's are all permanent, the vxlan FDB included). */
  permanent: boolean;
  /** Neighbour: the entry has a link-layer address (not INCOMPLETE/FAILED). */
  resolved: boolean;
  /** Route: has a gateway (`via`); without one it is a connected/on-link route. */
  via: boolean;
  /** Route: its `proto` ("kernel", "ra", "static", …), when printed. */
  proto: string | undefined;
  /** Address: SLAAC's `dynamic` flag (refreshed by every router advertisement). */
  dynamic: boolean;
}

/** The overlay as the event filter sees it. */
export interface OverlayScope {
  /** The external (underlay) interface, e.g. "eth0". */
  underlay: string;
  /** The Network and, when dual-stack, the IPv6Network. */
  networks: readonly IpSubnet[];
}

const LABELS: Record<string, KernelEventObject> = { LINK: "link", ADDR: "address", ROUTE: "route", NEIGH: "neigh" };
/** Route types `ip` prints before the destination. */
const ROUTE_TYPES = new Set(["local", "broadcast", "multicast", "unicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat"]);

/**
 * One line of `ip -o monitor label …`; undefined for anything else. Examples (iproute2 6.1):
 *   [LINK]Deleted 4: flannel.1: <BROADCAST,MULTICAST> mtu 1450 qdisc noop state DOWN …
 *   [ADDR]3: eth0    inet6 fd77::1/64 scope global nodad \       valid_lft forever …
 *   [ROUTE]10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink
 *   [NEIGH]Deleted 192.168.77.2 dev flannel.1 lladdr 02:00:00:00:00:02 NOARP PERMANENT
 */
export function parseMonitorLine(line: string): KernelEvent | undefined {
  const labelled = /^\[([A-Z]+)\](.*)$/.exec(line.trim());
  const object = labelled && LABELS[labelled[1] as string];
  if (!labelled || !object) return undefined;
  let rest = labelled[2] as string;
  const deleted = rest.startsWith("Deleted ");
  if (deleted) rest = rest.slice("Deleted ".length);
  const event: KernelEvent = { object, deleted, device: undefined, target: undefined, permanent: false, resolved: false, via: false, proto: undefined, dynamic: false };
  const words = rest.trim().split(/\s+/);
  const after = (word: string) => {
    const at = words.indexOf(word);
    return at >= 0 ? words[at + 1] : undefined;
  };
  switch (object) {
    case "link": {
      // Older iproute2 printed "Deleted link 7: …".
      const match = /^(?:link )?\d+: ([^:@\s]+)(?:@[^:\s]*)?:/.exec(rest);
      if (!match) return undefined;
      event.device = match[1];
      return event;
    }
    case "address": {
      const match = /^\d+: (\S+)\s+inet6? (\S+)/.exec(rest);
      if (!match) return undefined;
      event.device = match[1];
      event.target = match[2];
      event.dynamic = words.includes("dynamic");
      return event;
    }
    case "route": {
      const first = ROUTE_TYPES.has(words[0] ?? "") ? 1 : 0;
      event.target = words[first];
      event.device = after("dev");
      event.via = words.includes("via");
      event.proto = after("proto");
      return event.target ? event : undefined;
    }
    case "neigh": {
      const start = words[0] === "miss" || words[0] === "proxy" ? 1 : 0;
      event.target = words[start];
      event.device = after("dev");
      event.permanent = words.includes("PERMANENT");
      event.resolved = words.includes("lladdr");
      return event.device ? event : undefined;
    }
  }
}

/**
 * Whether an event can concern state weft keeps, i.e. whether a reconcile is worth it:
 *   - weft's devices (flannel.N, flannel-v6.N, weft.N, flannel-wg, flannel0): link, address and
 *     route events; neighbour events that delete an entry or set a resolved or permanent one
 *     (not the INCOMPLETE/FAILED churn of traffic to an unresolved address);
 *   - the underlay: link and address events (a link going down flushes IPv4 routes through it
 *     without any route event), routes deleted, on-link routes added (host-gw and DirectRouting
 *     decide on-link-ness from them); not router advertisements refreshing SLAAC addresses and
 *     RA routes, which would wake the daemon at every advertisement;
 *   - any route into the Network (IPv6Network), whatever its device.
 * Neighbours of other devices (ARP and ND state changes on the underlay, bridge learning on
 * docker0) never are: they change all the time on a busy host and weft keeps none there.
 */
export function concernsOverlay(event: KernelEvent, scope: OverlayScope): boolean {
  const { device } = event;
  if (device !== undefined && isWeftDevice(device)) {
    return event.object !== "neigh" || event.deleted || event.permanent || event.resolved;
  }
  if (event.object === "route" && intoNetwork(event.target, scope.networks)) return true;
  if (device !== scope.underlay) return false;
  switch (event.object) {
    case "link":
      return true;
    case "address":
      return event.deleted || !event.dynamic;
    case "route":
      return event.deleted || (!event.via && event.proto !== "ra");
    case "neigh":
      return false;
  }
}

function intoNetwork(target: string | undefined, networks: readonly IpSubnet[]): boolean {
  if (target === undefined || target === "default") return false;
  const destination = tryParseIpSubnet(target, target.includes(":") ? 6 : 4);
  return destination !== undefined && networks.some((network) => subnetContains(network, destination));
}

/** The names of the devices weft's backends create (flanneld's names, and weft.N of userspace vxlan). */
export function isWeftDevice(name: string): boolean {
  return /^(flannel|weft)([.0-9]|-wg|-v6)/.test(name);
}

/**
 * The kernel event stream (not yet started): each event that concerns the overlay
 * (concernsOverlay) goes to `onEvent`; `onRunning` says whether events are being seen at all,
 * so the caller polls at the short interval while the monitor is down.
 */
export function kernelEventMonitor(options: {
  scope: OverlayScope;
  onEvent: (event: KernelEvent, line: string) => void;
  onRunning: (running: boolean) => void;
  logger: Logger;
  /** Watch this network namespace instead of the daemon's own (tests). */
  netns?: string;
}): LineMonitor {
  return new LineMonitor({
    what: "kernel events (ip monitor)",
    program: "ip",
    args: ["-o", "monitor", "label", "link", "address", "route", "neigh"],
    netns: options.netns,
    logger: options.logger,
    onRunning: options.onRunning,
    onLine: (line) => {
      const event = parseMonitorLine(line);
      if (event && concernsOverlay(event, options.scope)) options.onEvent(event, line);
    },
  });
}
