import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CommandFailedError, CommandMissingError, CommandTimedOutError, commandFailureText } from "../process/command-errors.js";
import { runCommand } from "../process/run-command.js";
import { formatIpv6, type Ipv6Subnet } from "../net/ipv6.js";
import { assertDeviceName } from "./objects.js";
import { readTunRouting } from "./tun-routing.js";

/**
 * A WireGuard device configured with wg(8) and ip(8): the kernel module's `type wireguard` link,
 * or a TUN served by Debian's wireguard-go (kernel/wireguard-go.ts starts it). wg speaks both
 * configuration protocols (netlink to the module, the UAPI socket /run/wireguard/<dev>.sock to
 * wireguard-go), so everything after the device is born is one code path.
 *
 * Secrets: the private key and a PSK reach wg through a 0600 file in a fresh 0700 directory,
 * removed as soon as wg returns (wg reads keys from files only; its stdin from Node is a socket,
 * which /dev/stdin cannot open). The private key written there is the one weft read and
 * checked, not flannel's key file by path, so a file replaced after the check (a rotation that
 * was refused) never reaches the device. Neither is ever on a command line. `wg show <dev>
 * dump` prints both: the parser keeps neither (only whether the peer's PSK is ours), and a
 * failed dump is reported without its output.
 */

const TIMEOUT_MS = 10_000;
/** wg(8) accepts many `peer` clauses in one call; bounded so a command line stays far below ARG_MAX. */
const PEERS_PER_CALL = 200;

export interface WgInterfaceState {
  /** "(none)" before a private key is set. */
  publicKey: string;
  listenPort: number;
}

export interface WgPeerState {
  publicKey: string;
  /** Whether the peer has a preshared key, and whether it is the one we compare against. */
  presharedKey: "none" | "ours" | "other";
  /** "a.b.c.d:port" or "[v6]:port"; undefined before the peer was configured with one or roamed. */
  endpoint: string | undefined;
  /** "a.b.c.d/len", as wg prints them. */
  allowedIps: string[];
  /** Unix seconds of the last handshake; 0: none yet. */
  latestHandshakeSeconds: number;
  rxBytes: number;
  txBytes: number;
  /** 0: off. */
  persistentKeepaliveSeconds: number;
}

export interface WgDump {
  device: WgInterfaceState;
  peers: WgPeerState[];
}

/** What one peer must be configured with. */
export interface WgPeerConfig {
  publicKey: string;
  endpoint: string;
  allowedIps: readonly string[];
  persistentKeepaliveSeconds: number;
}

const NONE = "(none)";
const WG_PURPOSE = "the wireguard backend configures its device with wg (wireguard-tools)";

function dumpNumber(text: string | undefined, what: string, line: number): number {
  const value = text === "off" ? 0 : Number(text);
  if (text === undefined || !Number.isInteger(value) || value < 0) {
    throw new Error(`wg show dump line ${line}: ${what} ${JSON.stringify(text)} is not a non-negative integer`);
  }
  return value;
}

/**
 * Parses `wg show <dev> dump`: a line for the interface (private key, public key, listen port,
 * fwmark) and one per peer (public key, preshared key, endpoint, allowed IPs, latest handshake,
 * rx, tx, persistent keepalive), tab-separated. `ourPresharedKey` (base64) is what a peer's PSK
 * is compared with; the keys themselves are dropped here.
 */
export function parseWgDump(text: string, ourPresharedKey?: string): WgDump {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  const first = lines[0]?.split("\t");
  if (!first || first.length !== 4) {
    throw new Error(`wg show dump: the first line has ${first?.length ?? 0} fields, not the interface's 4 (private key, public key, port, fwmark)`);
  }
  const device: WgInterfaceState = { publicKey: first[1] as string, listenPort: dumpNumber(first[2], "listen port", 1) };
  const peers = lines.slice(1).map((line, index): WgPeerState => {
    const fields = line.split("\t");
    const number = index + 2;
    if (fields.length !== 8) throw new Error(`wg show dump line ${number}: ${fields.length} fields, not a peer's 8`);
    const [publicKey, psk, endpoint, allowed, handshake, rx, tx, keepalive] = fields as [string, string, string, string, string, string, string, string];
    return {
      publicKey,
      presharedKey: psk === NONE ? "none" : psk === ourPresharedKey ? "ours" : "other",
      endpoint: endpoint === NONE ? undefined : endpoint,
      allowedIps: allowed === NONE ? [] : allowed.split(",").filter((entry) => entry !== ""),
      latestHandshakeSeconds: dumpNumber(handshake, "latest handshake", number),
      rxBytes: dumpNumber(rx, "rx bytes", number),
      txBytes: dumpNumber(tx, "tx bytes", number),
      persistentKeepaliveSeconds: dumpNumber(keepalive, "persistent keepalive", number),
    };
  });
  return { device, peers };
}

/**
 * The `wg set` arguments of peers (a PSK clause each when `pskFile` is given). A peer in
 * `initiate` must be one this call creates: both implementations send a keepalive, and so start
 * a handshake at once, when a peer's persistent keepalive goes from off to on (the kernel's
 * netlink.c set_peer, wireguard-go's UAPI), which a new peer with a keepalive does by itself;
 * one without gets it switched on for that clause and off again in the next, so the device ends
 * as configured.
 */
export function peerArguments(peers: readonly WgPeerConfig[], pskFile?: string, initiate: ReadonlySet<string> = new Set()): string[] {
  return peers.flatMap((peer) => {
    const kick = initiate.has(peer.publicKey) && peer.persistentKeepaliveSeconds === 0;
    return [
      "peer", peer.publicKey,
      "endpoint", peer.endpoint,
      "allowed-ips", peer.allowedIps.join(","),
      "persistent-keepalive", kick ? "1" : peer.persistentKeepaliveSeconds > 0 ? String(peer.persistentKeepaliveSeconds) : "off",
      ...(pskFile === undefined ? [] : ["preshared-key", pskFile]),
      ...(kick ? ["peer", peer.publicKey, "persistent-keepalive", "off"] : []),
    ];
  });
}

/**
 * The `wg set` arguments that make the device forget peers and configure them again at once,
 * initiating a handshake to each (peerArguments' `initiate`): a fresh peer has no handshake
 * behind it, so none of the implementations' once-per-REKEY_TIMEOUT (5 s) limit holds it back.
 */
export function reinitiateArguments(peers: readonly WgPeerConfig[], pskFile?: string): string[] {
  return peers.flatMap((peer) => ["peer", peer.publicKey, "remove", ...peerArguments([peer], pskFile, new Set([peer.publicKey]))]);
}

/** A link as `ip -d link` shows it: enough to tell a wireguard device from a left-over TUN. */
export interface WgLinkState {
  /** "wireguard" (kernel module), "tun" (wireguard-go), or another kind. */
  kind: string | undefined;
  mtu: number;
  up: boolean;
}

/** Output of a failed `wg`/`ip` call without stdout (a dump's stdout holds the private key). */
function safeFailure(what: string, error: unknown): Error {
  if (error instanceof CommandMissingError) return error;
  if (error instanceof CommandTimedOutError) return new Error(`${what}: no answer within ${TIMEOUT_MS} ms`);
  if (error instanceof CommandFailedError) return new Error(`${what}: ${error.stderr.trim() || `exit code ${error.exitCode}`}`);
  return new Error(`${what}: ${commandFailureText(error)}`);
}

export class WireguardDevice {
  constructor(
    readonly name: string,
    /** Network namespace (name under /run/netns); undefined: this process's. */
    readonly netns?: string,
  ) {
    assertDeviceName(name, "WireGuard device");
  }

  get where(): string {
    return this.netns === undefined ? this.name : `${this.name} in namespace "${this.netns}"`;
  }

  async readLink(): Promise<WgLinkState | undefined> {
    const result = await runCommand("ip", [...this.ipNetns(), "-j", "-d", "link", "show", "dev", this.name], { timeoutMs: TIMEOUT_MS, allowFailure: true });
    if (result.exitCode !== 0) {
      if (/does not exist|Cannot find device/i.test(result.stderr)) return undefined;
      throw new Error(`cannot read link ${this.where}: ${result.stderr.trim() || (result.timedOut ? "timed out" : `exit code ${result.exitCode}`)}`);
    }
    const link = (JSON.parse(result.stdout) as { mtu: number; flags: string[]; linkinfo?: { info_kind?: string } }[])[0];
    return link && { kind: link.linkinfo?.info_kind, mtu: link.mtu, up: link.flags.includes("UP") };
  }

  /** The device's configuration, or undefined when wg cannot reach one by this name (no device, or a TUN nobody serves). */
  async readDump(ourPresharedKey?: Buffer): Promise<WgDump | undefined> {
    let result;
    try {
      result = await runCommand("wg", ["show", this.name, "dump"], { netns: this.netns, timeoutMs: TIMEOUT_MS, allowFailure: true, purpose: WG_PURPOSE });
    } catch (error) {
      throw safeFailure(`\`wg show ${this.name} dump\` failed for ${this.where}`, error);
    }
    if (result.exitCode !== 0) {
      if (/Unable to access interface|No such device|Protocol not supported/i.test(result.stderr)) return undefined;
      throw new Error(`\`wg show ${this.name} dump\` failed for ${this.where}: ${result.stderr.trim() || (result.timedOut ? "timed out" : `exit code ${result.exitCode}`)}`);
    }
    const stdout = result.stdout;
    return parseWgDump(stdout, ourPresharedKey?.toString("base64"));
  }

  /** `ip link add <dev> type wireguard`: the kernel module's device. */
  async createKernelDevice(): Promise<void> {
    await this.ip(["link", "add", "dev", this.name, "type", "wireguard"], "create");
  }

  async delete(): Promise<void> {
    await runCommand("ip", [...this.ipNetns(), "link", "del", "dev", this.name], { timeoutMs: TIMEOUT_MS, allowFailure: true });
  }

  async setMtuUp(mtu: number): Promise<void> {
    await this.ip(["link", "set", "dev", this.name, "mtu", String(mtu), "up"], "set MTU and up on");
  }

  /**
   * The addressing of a device that carries IPv6 alone (flannel-wg-v6, as flanneld's ConfigureV6):
   * the own IPv6 subnet's network address as /128, any other global IPv6 address (an old
   * lease's) removed after it, and the IPv6 Network routed into the device.
   */
  async addressIpv6(ownSubnet: Ipv6Subnet, network: Ipv6Subnet): Promise<void> {
    const address = `${formatIpv6(ownSubnet.network)}/128`;
    // nodad: the address is ours alone (no neighbours behind a WireGuard device), usable at once.
    await this.ip(["-6", "addr", "replace", address, "dev", this.name, "nodad"], "address");
    for (const other of (await readTunRouting(this.name, this.netns)).addresses) {
      if (other !== address && other.includes(":")) await this.ip(["-6", "addr", "del", other, "dev", this.name], "address");
    }
    await this.ip(["-6", "route", "replace", network.toString(), "dev", this.name], "route into");
  }

  /**
   * Private key and listen port; only what is given is set. A new private key makes the device
   * drop its sessions for sending (kernel and wireguard-go alike): every peer's next packet
   * starts a handshake with it.
   */
  async setInterface(settings: { privateKey?: Buffer; listenPort?: number }): Promise<void> {
    if (settings.privateKey === undefined && settings.listenPort === undefined) return;
    await withSecretFile("private-key", settings.privateKey, async (keyFile) => {
      await this.wgSet([
        ...(keyFile === undefined ? [] : ["private-key", keyFile]),
        ...(settings.listenPort === undefined ? [] : ["listen-port", String(settings.listenPort)]),
      ]);
    });
  }

  /**
   * Removes peers, then adds or updates others (allowed IPs replaced, as `wg set` does), in as
   * few calls as the batch size allows (a lease's new key taking over its subnet from the old
   * one is one call: a rotation's stall is as short as it can be). `presharedKey` goes to each
   * peer set; `initiate`: keys of set peers this call creates that start a handshake at once
   * (peerArguments).
   */
  async updatePeers(change: { remove: readonly string[]; set: readonly WgPeerConfig[]; initiate?: ReadonlySet<string> }, presharedKey?: Buffer): Promise<void> {
    if (change.remove.length + change.set.length === 0) return;
    await withSecretFile("psk", change.set.length > 0 ? presharedKey : undefined, async (pskFile) => {
      const clauses = [
        ...change.remove.map((key) => ["peer", key, "remove"]),
        ...change.set.map((peer) => peerArguments([peer], pskFile, change.initiate)),
      ];
      for (let start = 0; start < clauses.length; start += PEERS_PER_CALL) await this.wgSet(clauses.slice(start, start + PEERS_PER_CALL).flat());
    });
  }

  /** Peers forgotten and configured again in one call each batch, each initiating a handshake (reinitiateArguments). */
  async reinitiatePeers(peers: readonly WgPeerConfig[], presharedKey?: Buffer): Promise<void> {
    if (peers.length === 0) return;
    await withSecretFile("psk", presharedKey, async (pskFile) => {
      for (let start = 0; start < peers.length; start += PEERS_PER_CALL) {
        await this.wgSet(reinitiateArguments(peers.slice(start, start + PEERS_PER_CALL), pskFile));
      }
    });
  }

  private ipNetns(): string[] {
    return this.netns === undefined ? [] : ["-n", this.netns];
  }

  private async ip(args: string[], what: string): Promise<void> {
    try {
      await runCommand("ip", [...this.ipNetns(), ...args], { timeoutMs: TIMEOUT_MS });
    } catch (error) {
      throw safeFailure(`cannot ${what} WireGuard device ${this.where} (\`ip ${args.join(" ")}\`)`, error);
    }
  }

  private async wgSet(args: string[]): Promise<void> {
    try {
      await runCommand("wg", ["set", this.name, ...args], { netns: this.netns, timeoutMs: TIMEOUT_MS, purpose: WG_PURPOSE });
    } catch (error) {
      throw safeFailure(`\`wg set ${this.name} …\` failed for ${this.where}`, error);
    }
  }
}

/** Runs `use` with `secret` (base64) in a 0600 file `name` of a fresh 0700 directory, removed after; without a secret, with none. */
async function withSecretFile(name: string, secret: Buffer | undefined, use: (file: string | undefined) => Promise<void>): Promise<void> {
  if (secret === undefined) return use(undefined);
  const dir = await mkdtemp(join(tmpdir(), `weft-wg-${name}-`));
  try {
    const file = join(dir, name);
    await writeFile(file, `${secret.toString("base64")}\n`, { mode: 0o600 });
    await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether the kernel can create wireguard devices in the namespace, and if not, what `ip` said. */
export type KernelWireguardProbe = { available: true } | { available: false; reason: string };

/**
 * Creates and at once deletes a `type wireguard` probe device: the one reliable check (the
 * module may be built in, loadable on demand, or absent; /sys/module tells only the first).
 */
export async function probeKernelWireguard(netns?: string): Promise<KernelWireguardProbe> {
  const name = `weftwgp${process.pid % 100_000}`;
  const prefix = netns === undefined ? [] : ["-n", netns];
  const added = await runCommand("ip", [...prefix, "link", "add", "dev", name, "type", "wireguard"], { timeoutMs: TIMEOUT_MS, allowFailure: true });
  if (added.exitCode !== 0) return { available: false, reason: added.stderr.trim() || (added.timedOut ? "timed out" : `exit code ${added.exitCode}`) };
  await runCommand("ip", [...prefix, "link", "del", "dev", name], { timeoutMs: TIMEOUT_MS, allowFailure: true });
  return { available: true };
}
