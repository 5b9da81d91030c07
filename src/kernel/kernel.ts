import { Ipv4Subnet } from "../net/ipv4.js";
import { Ipv6Subnet } from "../net/ipv6.js";
import { tryCanonicalIp, tryParseIpSubnet, type IpFamily } from "../net/ip-subnet.js";
import { BatchProcess, BatchProcessStoppedError, type BatchTool } from "./batch-process.js";
import { addLine, isAlreadyGone, removeLine, type FdbObject, type NeighbourObject, type RouteObject, type BatchLine } from "./objects.js";
import { describeChange, type KernelChange } from "./plan.js";
import { errorMessage } from "../errors/error-message.js";
import { CommandFailedError, CommandMissingError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";

/**
 * The kernel of one network namespace as weft sees it: changes go through two long-lived batch
 * processes (`ip` for routes/neighbours/links, `bridge` for FDB entries); reads are `ip -j` /
 * `bridge -j` snapshots. The daemon uses the namespace it runs in (netns undefined); tests
 * point one Kernel per simulated host at a test namespace.
 */

/** iproute2's words for an interface index it cached and the kernel no longer knows. */
const STALE_DEVICE = /No such device|Cannot find device/;
/** What `ip link show dev <name>` prints on stderr for a link that is not there. */
const NO_SUCH_LINK = /does not exist|Cannot find device/i;

export interface ChangeFailure {
  change: string;
  error: string;
}

interface LineFailure extends ChangeFailure {
  line: string;
  /** The tool named a device it no longer knows: a fresh batch process may succeed. */
  staleDevice: boolean;
}

/** A link as `ip -j -d link show` reports it (the fields weft reads). */
export interface LinkState {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  operstate?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: {
      id?: number;
      local?: string;
      /** An IPv6 underlay's local address (flannel-v6.N). */
      local6?: string;
      /** A TUN device (info_kind "tun") that outlives its fds (TUNSETPERSIST). */
      persist?: boolean;
      link?: string;
      port?: number;
      learning?: boolean;
      gbp?: boolean;
      group?: string;
      group6?: string;
      remote?: string;
      remote6?: string;
      l2miss?: boolean;
      l3miss?: boolean;
    };
  };
}

export interface AddressState {
  address: string;
  prefixLength: number;
}

interface RawRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
  flags?: string[];
  scope?: string;
}

/** A route as read, with what ownership decisions need besides the RouteObject fields. */
export interface RouteState extends RouteObject {
  protocol: string;
  type: string;
  scope: string;
}

/**
 * An address as weft writes it (RFC 5952 for IPv6), so objects read back compare equal to the
 * desired ones; iproute2 already prints that form, this only guards against a differing printer.
 */
function canonical(address: string): string {
  if (!address.includes(":")) return address; // IPv4: iproute2's dotted quad is already canonical
  return tryCanonicalIp(address)?.text ?? address;
}

/** Main-table routes of both families at one moment; `v6` is empty when IPv6 was not read. */
export interface RouteSnapshot {
  v4: readonly RouteState[];
  v6: readonly RouteState[];
}

export const NO_ROUTES: RouteSnapshot = Object.freeze({ v4: Object.freeze([]), v6: Object.freeze([]) });

export class Kernel {
  private readonly batches: Record<BatchTool, BatchProcess>;

  constructor(readonly netns?: string) {
    this.batches = { ip: new BatchProcess("ip", netns), bridge: new BatchProcess("bridge", netns) };
  }

  get where(): string {
    return this.netns === undefined ? "this host" : `namespace "${this.netns}"`;
  }

  /**
   * Applies changes in a safe order (removals before additions; neighbours and FDB entries
   * before the routes that use them), `ip` and `bridge` lines in parallel. Returns the
   * failures; a removal of something already gone is not one.
   */
  async apply(changes: readonly KernelChange[]): Promise<ChangeFailure[]> {
    const order = (change: KernelChange): number => {
      const removing = change.action === "remove";
      const isRoute = change.object.kind === "route";
      if (removing) return isRoute ? 0 : 1;
      return isRoute ? 3 : 2;
    };
    const sorted = [...changes].sort((a, b) => order(a) - order(b));
    const lines: Record<BatchTool, { line: string; change: KernelChange }[]> = { ip: [], bridge: [] };
    for (const change of sorted) {
      const batchLine: BatchLine = change.action === "remove" ? removeLine(change.object) : addLine(change.object);
      lines[batchLine.tool].push({ line: batchLine.line, change });
      // An FDB replace only adds a destination for the MAC key; drop the old one explicitly.
      if (change.action === "replace" && change.object.kind === "fdb" && change.previous.kind === "fdb") {
        const stale = removeLine(change.previous);
        lines.bridge.unshift({ line: stale.line, change: { action: "remove", object: change.previous } });
      }
    }
    let failures = await this.runLines(lines);
    if (failures.some((failure) => failure.staleDevice)) {
      // iproute2 caches interface indexes for the life of a batch process; after a device is
      // re-created (by us or anyone) the cached index is stale. Fresh processes, one retry.
      await this.resetBatches();
      const retry = new Set(failures.map((failure) => failure.line));
      failures = await this.runLines({
        ip: lines.ip.filter((entry) => retry.has(entry.line)),
        bridge: lines.bridge.filter((entry) => retry.has(entry.line)),
      });
    }
    return failures.map(({ change, error }) => ({ change, error }));
  }

  private async runLines(lines: Record<BatchTool, { line: string; change: KernelChange }[]>): Promise<LineFailure[]> {
    const failures: LineFailure[] = [];
    await Promise.all(
      (["ip", "bridge"] as const).map(async (tool) => {
        const entries = lines[tool];
        // Per line: our message, and the tool's own words (what staleness is recognised from).
        let results: { error?: string; toolOutput?: string }[];
        try {
          results = (await this.batches[tool].run(entries.map((entry) => entry.line))).map((result) =>
            result.error === undefined ? {} : { error: result.error, toolOutput: result.error },
          );
        } catch (error) {
          // The process died mid-batch: which lines ran is unknown, so all count as failed (retryable).
          const toolOutput = error instanceof BatchProcessStoppedError ? error.toolOutput : "";
          results = entries.map(() => ({ error: errorMessage(error), toolOutput }));
        }
        results.forEach((result, index) => {
          const entry = entries[index];
          if (!entry || result.error === undefined) return;
          if (entry.change.action === "remove" && isAlreadyGone(result.error)) return;
          const staleDevice = STALE_DEVICE.test(result.toolOutput ?? "");
          failures.push({ change: describeChange(entry.change), error: result.error, line: entry.line, staleDevice });
        });
      }),
    );
    return failures;
  }

  /**
   * Restarts the batch processes so they forget cached interface indexes. Call after creating
   * or deleting a link, and before a reconcile pass (someone else may have re-created one).
   */
  async resetBatches(): Promise<void> {
    await Promise.all([this.batches.ip.close(), this.batches.bridge.close()]);
  }

  /** Runs raw `ip` lines (device set-up) through the batch; throws naming the first failed line. */
  async ip(lines: readonly string[]): Promise<void> {
    const results = await this.batches.ip.run(lines);
    const failed = results.find((result) => result.error !== undefined);
    if (failed) throw new Error(`\`ip ${failed.command}\` failed in ${this.where}: ${failed.error}`);
  }

  async readLink(name: string): Promise<LinkState | undefined> {
    let stdout: string;
    try {
      stdout = await this.query("ip", ["-j", "-d", "link", "show", "dev", name]);
    } catch (error) {
      if (error instanceof CommandFailedError && NO_SUCH_LINK.test(error.stderr)) return undefined;
      throw this.readError(`read link ${name}`, error);
    }
    return (JSON.parse(stdout) as LinkState[])[0];
  }

  async listLinkNames(): Promise<string[]> {
    const stdout = await this.read("list links", "ip", ["-j", "link", "show"]);
    return (JSON.parse(stdout) as { ifname: string }[]).map((link) => link.ifname);
  }

  /** The device's addresses of one family (IPv6: link-local ones included), as the kernel prints them. */
  async readAddresses(device: string, family: IpFamily = 4): Promise<AddressState[]> {
    const stdout = await this.read(`read IPv${family} addresses of ${device}`, "ip", ["-j", `-${family}`, "addr", "show", "dev", device]);
    const links = JSON.parse(stdout) as { addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    const wanted = family === 4 ? "inet" : "inet6";
    return (links[0]?.addr_info ?? [])
      .filter((info) => info.family === wanted)
      .map((info) => ({ address: canonical(info.local), prefixLength: info.prefixlen }));
  }

  /** Unicast/other routes of one family in the main table (not local/broadcast table entries). */
  async readRoutes(family: IpFamily = 4): Promise<RouteState[]> {
    const stdout = await this.read(`read IPv${family} routes`, "ip", ["-j", `-${family}`, "route", "show", "table", "main"]);
    const routes: RouteState[] = [];
    const anywhere = family === 4 ? new Ipv4Subnet(0, 0) : new Ipv6Subnet(0n, 0);
    for (const raw of JSON.parse(stdout) as RawRoute[]) {
      const destination = raw.dst === "default" ? anywhere : tryParseIpSubnet(raw.dst, family);
      if (!destination || raw.dev === undefined) continue;
      routes.push({
        kind: "route",
        destination,
        gateway: raw.gateway === undefined ? undefined : canonical(raw.gateway),
        device: raw.dev,
        onlink: (raw.flags ?? []).includes("onlink"),
        protocol: raw.protocol ?? "boot",
        type: raw.type ?? "unicast",
        scope: raw.scope ?? "global",
      });
    }
    return routes;
  }

  /** IPv4 routes, and IPv6 ones too for a dual-stack network (read in parallel). */
  async readRouteSnapshot(ipv6: boolean): Promise<RouteSnapshot> {
    const [v4, v6] = await Promise.all([this.readRoutes(4), ipv6 ? this.readRoutes(6) : []]);
    return { v4, v6 };
  }

  /** PERMANENT neighbour entries of one family on `device` (the only kind weft writes). */
  async readPermanentNeighbours(device: string, family: IpFamily = 4): Promise<NeighbourObject[]> {
    const stdout = await this.read(`read IPv${family} neighbours of ${device}`, "ip", ["-j", `-${family}`, "neigh", "show", "dev", device, "nud", "permanent"]);
    return (JSON.parse(stdout) as { dst: string; lladdr?: string }[])
      .filter((entry) => entry.lladdr !== undefined)
      .map((entry) => ({ kind: "neigh", address: canonical(entry.dst), mac: (entry.lladdr as string).toLowerCase(), device }));
  }

  /** FDB entries on `device` that send to a unicast destination (vxlan remotes). */
  async readRemoteFdb(device: string): Promise<FdbObject[]> {
    const stdout = await this.read(`read FDB of ${device}`, "bridge", ["-j", "fdb", "show", "dev", device]);
    return (JSON.parse(stdout) as { mac: string; dst?: string; state?: string }[])
      .filter((entry) => entry.dst !== undefined && entry.mac !== "00:00:00:00:00:00")
      .map((entry) => ({ kind: "fdb", mac: entry.mac.toLowerCase(), device, destination: canonical(entry.dst as string) }));
  }

  /** Ends the batch processes; kernel state stays as programmed. */
  async close(): Promise<void> {
    await Promise.all([this.batches.ip.close(), this.batches.bridge.close()]);
  }

  /** stdout of an `ip -j`/`bridge -j` snapshot in this kernel's namespace; rejects with the runner's errors. */
  private async query(tool: BatchTool, args: readonly string[]): Promise<string> {
    const fullArgs = [...(this.netns === undefined ? [] : ["-n", this.netns]), ...args];
    return (await runCommand(tool, fullArgs, { timeoutMs: 30_000 })).stdout;
  }

  /** A query whose failure names what was being read and where. */
  private async read(what: string, tool: BatchTool, args: readonly string[]): Promise<string> {
    try {
      return await this.query(tool, args);
    } catch (error) {
      throw this.readError(what, error);
    }
  }

  /** A missing tool keeps its own message (it names the package); other failures get the context. */
  private readError(what: string, error: unknown): Error {
    if (error instanceof CommandMissingError) return error;
    return new Error(`cannot ${what} in ${this.where}: ${commandFailureText(error)}`, { cause: error });
  }
}
