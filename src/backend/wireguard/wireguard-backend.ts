import type { Backend, BackendContext, BackendFactory, BackendRegistration } from "../backend.js";
import type { LeaseSetLoader } from "../lease-set-loader.js";
import type { ReconcileReport } from "../reconcile-report.js";
import { EngineBackend, type EngineBackendSpec, type EnginePlacement } from "../userspace/engine-backend.js";
import type { Lease, PeerEvent } from "../../lease/types.js";
import type { WireguardEngineOptions } from "../../engine/engine.js";
import { engineQueueOptions } from "../userspace/queue-options.js";
import { WireguardDevice, probeKernelWireguard } from "../../kernel/wireguard-device.js";
import { formatWireguardBackendData } from "./backend-data.js";
import { WireguardDeviceBackend, releaseDevicePath } from "./device-backend.js";
import { keyFilePath, loadOrCreateKey } from "./key-file.js";
import { KeyRotation, engineKeyHolder } from "./key-rotation.js";
import { IMPLEMENTATION_ENV, WIREGUARD_OVERHEAD, parseWireguardOptions, type ResolvedWireguardImplementation, type WireguardOptions } from "./options.js";
import { wireguardEnginePeerRoute } from "./peer-route.js";
import { exportWireguardStatus } from "./wireguard-metrics.js";
import type { NetworkConfig } from "../../config/network-config.js";

/**
 * flannel's wireguard backend (the device `flannel-wg` addressed with the lease's subnet address
 * as /32 and the whole Network routed into it, one WireGuard peer per wireguard lease, MTU =
 * MTU - 80, BackendData `{"PublicKey","Port"}`, the key in $WIREGUARD_KEY_FILE), and the choice
 * of what carries it, made once at register():
 *   - "kernel": the kernel module's device, configured with wg (device-backend.ts);
 *   - "wireguard-go": the same, on a device Debian's wireguard-go serves (weft starts it);
 *   - "userspace": weft's own WireGuard in the native engine (EngineBackend, wireguard mode);
 *   - "auto": kernel if `ip link add … type wireguard` works in the daemon's namespace, else
 *     userspace (on a dual-stack network too).
 * With EnableIPv6 both add flanneld's IPv6 by Mode: the device path as flannel-wg-v6 or one
 * device, the userspace engine as a second interface of its own (Mode "separate": ListenPortV6,
 * its own peers and sessions) or its IPv6 sockets serving the one interface (the other Modes);
 * BackendV6Data is advertised either way.
 * The lease is the same for all three, so hosts on different implementations form one cluster
 * (and one with flanneld's hosts).
 */
export interface WireguardBackendHooks extends EnginePlacement {
  /** The key file; default $WIREGUARD_KEY_FILE or /run/flannel/wgkey. */
  keyFile?: string;
  /** For tests: shortened protocol timers (userspace only). */
  timers?: WireguardEngineOptions["timers"];
  /** The host's environment ($WEFT_WIREGUARD_IMPLEMENTATION, $WIREGUARD_KEY_FILE); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How often the key file is looked at for a rotation; default 2 s. */
  keyWatchIntervalMs?: number;
}

/** Implementation "kernel" on a host whose kernel cannot create WireGuard devices. */
export class KernelWireguardUnavailableError extends Error {
  constructor(where: string, reason: string) {
    super(
      `Backend.Implementation "kernel": the kernel of ${where} cannot create a WireGuard device (\`ip link add <dev> type wireguard\` said: ${reason}); ` +
        'load the wireguard kernel module (`modprobe wireguard`; a kernel built with CONFIG_WIREGUARD), or use Implementation "wireguard-go" (apt-get install wireguard-go) or "userspace"',
    );
    this.name = "KernelWireguardUnavailableError";
  }
}

export interface ImplementationChoice {
  implementation: ResolvedWireguardImplementation;
  /** Why, for the log: "Backend.Implementation", "auto: the kernel has WireGuard", … */
  why: string;
}

/**
 * Decides the implementation; "kernel" and "auto" probe the kernel of `netns`. `ipv6`: the
 * network is dual-stack (which weft's userspace engine forwards in every Mode: said in the why).
 */
export async function chooseImplementation(options: WireguardOptions, env: NodeJS.ProcessEnv, netns?: string, ipv6 = false): Promise<ImplementationChoice> {
  const source = env[IMPLEMENTATION_ENV] ? `$${IMPLEMENTATION_ENV}` : "Backend.Implementation";
  if (options.implementation === "userspace" || options.implementation === "wireguard-go") return { implementation: options.implementation, why: source };
  const where = netns === undefined ? "this host" : `namespace "${netns}"`;
  const probe = await probeKernelWireguard(netns);
  if (options.implementation === "kernel") {
    if (!probe.available) throw new KernelWireguardUnavailableError(where, probe.reason);
    return { implementation: "kernel", why: source };
  }
  if (probe.available) return { implementation: "kernel", why: `${source} "auto": the kernel of ${where} has WireGuard` };
  const noKernel = `${source} "auto": the kernel of ${where} has no WireGuard (${probe.reason})`;
  if (!ipv6) return { implementation: "userspace", why: noKernel };
  return { implementation: "userspace", why: `${noKernel}; it forwards IPv6 too (Mode "${options.mode}")` };
}

/** A dual-stack network on a host whose external interface has no IPv6 address: nothing to bind the IPv6 sockets to. */
function warnNoExternalIpv6(context: BackendContext): void {
  context.logger.warn(
    { backend: "wireguard", implementation: "userspace", interface: context.external.name },
    "wireguard: EnableIPv6 is set but the external interface has no IPv6 address; IPv6 is not forwarded and no BackendV6Data is advertised (give it one, or set --public-ipv6 and --iface)",
  );
}

/** The device path needs IPv4 too: an IPv6-only network is refused with what to use instead. */
export function refuseIpv6OnlyWireguardNetwork(network: NetworkConfig): void {
  if (network.ipv4) return;
  throw new Error(
    "wireguard: the network is IPv6-only (EnableIPv4: false), and the wireguard backend always carries IPv4 (weft's userspace engine " +
      "and the device path both build IPv6 beside IPv4, as flanneld's flannel-wg-v6 or one dual-stack flannel-wg, not without it); enable IPv4 beside IPv6 (dual-stack, any Mode), " +
      'or use "Backend": {"Type": "vxlan"} or {"Type": "host-gw"} for an IPv6-only network',
  );
}

type Inner = (EngineBackend | WireguardDeviceBackend) & LeaseSetLoader;

export class WireguardBackend implements Backend, LeaseSetLoader {
  readonly type = "wireguard";
  private readonly options: WireguardOptions;
  private readonly env: NodeJS.ProcessEnv;
  private chosen: Promise<Inner> | undefined;
  private inner: Inner | undefined;
  private choice: ImplementationChoice | undefined;
  /** Follows the key file (an operator's rotation without a restart), for every implementation. */
  private rotation: KeyRotation | undefined;

  constructor(
    private readonly context: BackendContext,
    private readonly hooks: WireguardBackendHooks = {},
  ) {
    refuseIpv6OnlyWireguardNetwork(context.network);
    this.env = hooks.env ?? process.env;
    this.options = parseWireguardOptions(context.options, this.env);
  }

  /** The implementation once register() decided it. */
  get implementation(): ResolvedWireguardImplementation | undefined {
    return this.choice?.implementation;
  }

  /** The running engine of the userspace implementation, for tests and diagnostics. */
  get runningEngine() {
    return this.inner instanceof EngineBackend ? this.inner.runningEngine : undefined;
  }

  /** For /readyz: which implementation carries the traffic. */
  dataPathDetails(): Record<string, string> {
    if (!this.choice) return {};
    const details: Record<string, string> = { wireguardImplementation: this.choice.implementation };
    if (this.inner instanceof WireguardDeviceBackend) details.wireguardDevices = this.inner.deviceNames.join(",");
    else if (this.context.network.ipv6) {
      details.wireguardIpv6 = !this.userspaceIpv6()
        ? "not forwarded (the external interface has no IPv6 address)"
        : this.options.mode === "separate"
          ? `forwarded (Mode separate: a second interface on ListenPortV6 ${this.options.listenPortV6})`
          : `forwarded (Mode ${this.options.mode}: one interface for both families on ListenPort ${this.options.listenPort})`;
    }
    return details;
  }

  async register(): Promise<BackendRegistration> {
    const inner = await this.choose();
    // Only the daemon's start, never doctor's lease-set load: a doctor run without the daemon's
    // $WEFT_WIREGUARD_IMPLEMENTATION must not take the device from a running wireguard-go.
    if (this.choice?.implementation === "userspace") {
      const removed = await releaseDevicePath(new WireguardDevice(this.options.tunName, this.hooks.netns), this.context.stateDir);
      const ipv6Device = this.context.network.ipv6 ? deviceIfNameValid(this.options.tunNameV6, this.hooks.netns) : undefined;
      if (ipv6Device) removed.push(...(await releaseDevicePath(ipv6Device, this.context.stateDir)));
      if (removed.length > 0) this.context.logger.info({ removed }, "wireguard: removed the device an earlier start on another implementation left");
    }
    const registration = await inner.register();
    if (inner instanceof WireguardDeviceBackend) this.followDeviceKey(inner);
    return registration;
  }

  /** The device path's key rotation: from the key register() gave the devices on (the userspace one follows from its spec loader). */
  private followDeviceKey(device: WireguardDeviceBackend): void {
    const key = device.currentKey;
    if (!key) return;
    this.rotation ??= new KeyRotation({ context: this.context, attrsFor: (publicKey) => device.registrationAttrs(publicKey), intervalMs: this.hooks.keyWatchIntervalMs });
    this.rotation.follow(key, device);
  }

  async activate(ownLease: Lease): Promise<void> {
    await (await this.choose()).activate(ownLease);
  }

  async applyPeers(events: readonly PeerEvent[]): Promise<void> {
    await (await this.choose()).applyPeers(events);
  }

  async reconcile(options: { dryRun: boolean }): Promise<ReconcileReport> {
    return (await this.choose()).reconcile(options);
  }

  async loadLeaseSet(ownLease: Lease, peers: readonly Lease[]): Promise<void> {
    await (await this.choose()).loadLeaseSet(ownLease, peers);
  }

  refusedPeers(): string[] {
    return this.inner?.refusedPeers() ?? [];
  }

  async stop(): Promise<void> {
    this.rotation?.stop();
    const chosen = this.chosen && (await this.chosen.catch(() => undefined));
    await chosen?.stop();
  }

  private choose(): Promise<Inner> {
    this.chosen ??= this.build();
    return this.chosen;
  }

  private async build(): Promise<Inner> {
    const ipv6 = this.context.network.ipv6 !== undefined;
    const choice = await chooseImplementation(this.options, this.env, this.hooks.netns, ipv6);
    if (choice.implementation === "userspace" && ipv6 && !this.context.external.addressV6) warnNoExternalIpv6(this.context);
    this.choice = choice;
    const mtu = (this.options.mtu ?? this.context.external.mtu) - WIREGUARD_OVERHEAD;
    const keyFile = this.hooks.keyFile ?? keyFilePath(this.env);
    this.context.logger.info(
      {
        implementation: choice.implementation, why: choice.why, device: this.options.tunName, listenPort: this.options.listenPort, mtu,
        ...(ipv6 && choice.implementation !== "userspace" ? { mode: this.options.mode, ...(this.options.mode === "separate" ? { deviceV6: this.options.tunNameV6, listenPortV6: this.options.listenPortV6 } : {}) } : {}),
        ...(choice.implementation === "userspace" && this.userspaceIpv6() ? { mode: this.options.mode, listenPortV6: this.options.listenPortV6 } : {}),
      },
      `wireguard: ${describeImplementation(choice.implementation)} (${choice.why})`,
    );
    if (choice.implementation === "userspace") {
      const engine = this.userspace(mtu, keyFile);
      exportWireguardStatus(this.context.metrics, choice.implementation, () => {
        const running = engine.runningEngine;
        return running && !running.closed ? running.wireguardStatus() : undefined;
      });
      this.inner = engine;
      return engine;
    }
    const device = new WireguardDeviceBackend(this.context, {
      implementation: choice.implementation, options: this.options, mtu, keyFile, ...(this.hooks.netns === undefined ? {} : { netns: this.hooks.netns }),
    });
    exportWireguardStatus(this.context.metrics, choice.implementation, () => device.status());
    this.inner = device;
    return device;
  }

  /** The userspace engine carries IPv6 here: a dual-stack network and an external IPv6 address to bind. */
  private userspaceIpv6(): boolean {
    return this.context.network.ipv6 !== undefined && this.context.external.addressV6 !== undefined;
  }

  private userspace(mtu: number, keyFile: string): EngineBackend {
    const { options, context, hooks } = this;
    const ipv6 = this.userspaceIpv6();
    const separate = options.mode === "separate";
    // BackendV6Data: the same key and the port the IPv6-carrying interface really listens on
    // (Mode separate: ListenPortV6, as flanneld; the other Modes: ListenPort, where flanneld
    // writes ListenPortV6 although its one device listens on ListenPort: docs/wireguard.md).
    const portV6 = separate ? options.listenPortV6 : options.listenPort;
    const attrsFor = (publicKey: string) => ({
      backendType: "wireguard",
      backendData: formatWireguardBackendData({ publicKey, port: options.listenPort }),
      ...(ipv6 ? { backendV6Data: formatWireguardBackendData({ publicKey, port: portV6 }) } : {}),
    });
    const engine: EngineBackend = new EngineBackend(
      "wireguard",
      context,
      async () => {
        const key = await loadOrCreateKey(keyFile);
        const publicKey = key.publicKey.toString("base64");
        context.logger.info({ device: options.tunName, publicKey, keyFile: key.path, keyCreated: key.created }, "wireguard: key loaded");
        const spec: EngineBackendSpec = {
          registration: { attrs: attrsFor(publicKey), mtu },
          engine: {
            mode: "wireguard", tunName: options.tunName, mtu, port: options.listenPort, ...engineQueueOptions(options),
            ...(ipv6 ? { portV6, ipv6Interface: separate ? "separate" : "shared" } : {}),
            wireguard: {
              privateKey: key.privateKey, presharedKey: options.presharedKey, persistentKeepaliveSeconds: options.persistentKeepaliveSeconds,
              timers: hooks.timers, logger: context.logger,
            },
          },
          forwardsIpv6: ipv6,
          peerRoute: wireguardEnginePeerRoute(options, ipv6, {
            mode: options.mode, own: { ipv4: context.external.address, ipv6: context.external.addressV6 },
          }),
        };
        rotation.follow(key, engineKeyHolder(engine, spec, attrsFor));
        return spec;
      },
      hooks,
    );
    const rotation = new KeyRotation({ context, attrsFor, intervalMs: hooks.keyWatchIntervalMs });
    this.rotation = rotation;
    return engine;
  }
}

/** A device by that name, or undefined when the name cannot be one (a TunName too long for its "-v6" sibling, which then never existed). */
function deviceIfNameValid(name: string, netns: string | undefined): WireguardDevice | undefined {
  try {
    return new WireguardDevice(name, netns);
  } catch {
    return undefined;
  }
}

function describeImplementation(implementation: ResolvedWireguardImplementation): string {
  switch (implementation) {
    case "userspace":
      return "weft's userspace WireGuard (the native engine) carries the traffic";
    case "kernel":
      return "the kernel's WireGuard device carries the traffic, configured by weft with wg";
    case "wireguard-go":
      return "Debian's wireguard-go carries the traffic, configured by weft with wg";
  }
}

export function createWireguardBackend(context: BackendContext, hooks: WireguardBackendHooks = {}): WireguardBackend {
  return new WireguardBackend(context, hooks);
}

export const wireguardBackend: BackendFactory = {
  type: "wireguard",
  // Whether "kernel" can run is this host's question, asked at register() (`weft config set` may run elsewhere).
  validateOptions: (options) => void parseWireguardOptions(options),
  validateNetwork: (network) => refuseIpv6OnlyWireguardNetwork(network),
  create: (context) => createWireguardBackend(context),
};
