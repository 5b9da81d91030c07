import { readField, readInteger, readString, type JsonObject } from "../../codec/json-fields.js";
import { assertDeviceName } from "../../kernel/objects.js";
import { parseQueueOptions, type QueueOptions } from "../userspace/queue-options.js";

/**
 * flannel's wireguard Backend options (pkg/backend/wireguard): `ListenPort` (51820),
 * `ListenPortV6` (51821), `MTU` (the external interface's; the device gets MTU - 80), `PSK`
 * (base64, as `wg genpsk` prints it), `Mode` ("separate", "auto", "ipv4", "ipv6") and
 * `PersistentKeepaliveInterval` (seconds; 0 off). Mode matters only with EnableIPv6: "separate"
 * is a second device flannel-wg-v6 on ListenPortV6, the others one device for both families
 * (device-plan.ts). weft adds `TunName` (default "flannel-wg",
 * flanneld's device name), `Implementation` and the engine's `Queues`/`QueueThreads`.
 *
 * Implementations: "userspace" (weft's own WireGuard in the native engine), "kernel" (a
 * `type wireguard` device of the kernel module, configured with wg(8)), "wireguard-go" (the
 * same device configuration on a TUN served by Debian's wireguard-go, which weft starts) and
 * "auto" (kernel where the module is there, else userspace, which forwards IPv6 too in every
 * Mode). `$WEFT_WIREGUARD_IMPLEMENTATION`
 * overrides the config's value on one host, as `$WIREGUARD_KEY_FILE` picks its key file: a
 * cluster can move host by host.
 */
export type WireguardMode = "separate" | "auto" | "ipv4" | "ipv6";
export type WireguardImplementation = "auto" | "userspace" | "kernel" | "wireguard-go";
/** What runs once "auto" is decided. */
export type ResolvedWireguardImplementation = Exclude<WireguardImplementation, "auto">;
/** The per-host override of Backend.Implementation. */
export const IMPLEMENTATION_ENV = "WEFT_WIREGUARD_IMPLEMENTATION";

export interface WireguardOptions extends QueueOptions {
  listenPort: number;
  listenPortV6: number;
  /** undefined: the external interface's MTU. */
  mtu: number | undefined;
  presharedKey: Buffer | undefined;
  mode: WireguardMode;
  persistentKeepaliveSeconds: number;
  tunName: string;
  /** Mode "separate" on a dual-stack network: the IPv6 device, TunName + "-v6" (flanneld's flannel-wg-v6). */
  tunNameV6: string;
  implementation: WireguardImplementation;
}

export const DEFAULT_LISTEN_PORT = 51820;
export const DEFAULT_LISTEN_PORT_V6 = 51821;
export const DEFAULT_WIREGUARD_DEVICE = "flannel-wg";

/** The IPv6 device of Mode "separate" for a TunName: flannel-wg → flannel-wg-v6, as flanneld names it. */
export function ipv6DeviceName(tunName: string): string {
  return `${tunName}-v6`;
}
/**
 * flanneld's `overhead`: outer IPv4/IPv6 header (it reserves 40 for both), UDP 8, WireGuard's
 * type/index/counter 16 and tag 16. The device MTU and FLANNEL_MTU are MTU - 80.
 */
export const WIREGUARD_OVERHEAD = 80;

const MODES: readonly WireguardMode[] = ["separate", "auto", "ipv4", "ipv6"];
const IMPLEMENTATIONS: readonly WireguardImplementation[] = ["auto", "userspace", "kernel", "wireguard-go"];

/** A WireGuard key in its base64 text form (44 characters, 32 bytes). The error never shows the value. */
export function parseWireguardKey(text: string, what: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, "base64");
  if (!/^[A-Za-z0-9+/]{43}=$/.test(trimmed) || key.length !== 32) {
    throw new Error(`${what}: not a WireGuard key (44 characters of base64 encoding 32 bytes, as \`wg genkey\`/\`wg genpsk\` print)`);
  }
  return key;
}

function parseImplementation(text: string, what: string): WireguardImplementation {
  const lower = text.toLowerCase();
  if (!IMPLEMENTATIONS.includes(lower as WireguardImplementation)) {
    throw new Error(`${what}: "${text}" is not one of ${IMPLEMENTATIONS.join(", ")}`);
  }
  return lower as WireguardImplementation;
}

/** The config's options; `env` (this host's environment) may override Implementation. */
export function parseWireguardOptions(options: JsonObject, env: NodeJS.ProcessEnv = {}): WireguardOptions {
  const listenPort = readInteger(options, "ListenPort", "Backend.ListenPort", { min: 1, max: 65_535 }) ?? DEFAULT_LISTEN_PORT;
  const listenPortV6 = readInteger(options, "ListenPortV6", "Backend.ListenPortV6", { min: 1, max: 65_535 }) ?? DEFAULT_LISTEN_PORT_V6;
  const mtu = readInteger(options, "MTU", "Backend.MTU", { min: 576 + WIREGUARD_OVERHEAD, max: 65_535 });
  const psk = readField(options, "PSK");
  if (psk !== undefined && psk !== null && typeof psk !== "string") throw new Error("Backend.PSK: must be a string (base64, as `wg genpsk` prints)");
  const presharedKey = typeof psk === "string" && psk !== "" ? parseWireguardKey(psk, "Backend.PSK") : undefined;
  const modeText = (readString(options, "Mode", "Backend.Mode") ?? "separate").toLowerCase();
  if (!MODES.includes(modeText as WireguardMode)) {
    throw new Error(`Backend.Mode: "${modeText}" is not one of ${MODES.join(", ")}`);
  }
  const mode = modeText as WireguardMode;
  const persistentKeepaliveSeconds =
    readInteger(options, "PersistentKeepaliveInterval", "Backend.PersistentKeepaliveInterval", { min: 0, max: 65_535 }) ?? 0;
  const tunName = readString(options, "TunName", "Backend.TunName") ?? DEFAULT_WIREGUARD_DEVICE;
  assertDeviceName(tunName.replace("%d", "0"), "Backend.TunName");
  // Checked where it is used (a dual-stack network in Mode "separate"): a long TunName is fine without IPv6.
  const tunNameV6 = ipv6DeviceName(tunName);
  const configured = parseImplementation(readString(options, "Implementation", "Backend.Implementation") ?? "auto", "Backend.Implementation");
  const override = env[IMPLEMENTATION_ENV];
  const implementation = override !== undefined && override !== "" ? parseImplementation(override, `$${IMPLEMENTATION_ENV}`) : configured;
  return {
    listenPort, listenPortV6, mtu, presharedKey, mode, persistentKeepaliveSeconds, tunName, tunNameV6, implementation, ...parseQueueOptions(options),
  };
}
