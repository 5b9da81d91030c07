import { Ipv4Subnet } from "../net/ipv4.js";
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
      link?: string;
      port?: number;
      learning?: boolean;
      gbp?: boolean;
      group?: string;
      remote?: string;
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

  async readAddresses(device: string): Promise<AddressState[]> {
    const stdout = await this.read(`read addresses of ${device}`, "ip", ["-j", "-4", "addr", "show", "dev", device]);
    const links = JSON.parse(stdout) as { addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    return (links[0]?.addr_info ?? [])
      .filter((info) => info.family === "inet")
      .map((info) => ({ address: info.local, prefixLength: info.prefixlen }));
  }

  /** IPv4 unicast/other routes of the main table (not local/broadcast table entries). */
  async readRoutes(): Promise<RouteState[]> {
    const stdout = await this.read("read routes", "ip", ["-j", "-4", "route", "show", "table", "main"]);
    const routes: RouteState[] = [];
    for (const raw of JSON.parse(stdout) as RawRoute[]) {
      const destination = raw.dst === "default" ? new Ipv4Subnet(0, 0) : Ipv4Subnet.tryParse(raw.dst.includes("/") ? raw.dst : `${raw.dst}/32`);
      if (!destination || raw.dev === undefined) continue;
      routes.push({
        kind: "route",
        destination,
        gateway: raw.gateway,
        device: raw.dev,
        onlink: (raw.flags ?? []).includes("onlink"),
        protocol: raw.protocol ?? "boot",
        type: raw.type ?? "unicast",
        scope: raw.scope ?? "global",
      });
    }
    return routes;
  }

  /** PERMANENT IPv4 neighbour entries on `device` (the only kind weft writes). */
  async readPermanentNeighbours(device: string): Promise<NeighbourObject[]> {
    const stdout = await this.read(`read neighbours of ${device}`, "ip", ["-j", "-4", "neigh", "show", "dev", device, "nud", "permanent"]);
    return (JSON.parse(stdout) as { dst: string; lladdr?: string }[])
      .filter((entry) => entry.lladdr !== undefined)
      .map((entry) => ({ kind: "neigh", address: entry.dst, mac: (entry.lladdr as string).toLowerCase(), device }));
  }

  /** FDB entries on `device` that send to a unicast destination (vxlan remotes). */
  async readRemoteFdb(device: string): Promise<FdbObject[]> {
    const stdout = await this.read(`read FDB of ${device}`, "bridge", ["-j", "fdb", "show", "dev", device]);
    return (JSON.parse(stdout) as { mac: string; dst?: string; state?: string }[])
      .filter((entry) => entry.dst !== undefined && entry.mac !== "00:00:00:00:00:00")
      .map((entry) => ({ kind: "fdb", mac: entry.mac.toLowerCase(), device, destination: entry.dst as string }));
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
