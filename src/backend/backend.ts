import type { FdStore } from "../host/systemd/fd-store.js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { NetworkConfig } from "../config/network-config.js";
import type { ExternalInterface } from "../config/external-interface.js";
import type { Lease, LeaseAttrs, PeerEvent } from "../lease/types.js";
import type { ReconcileReport } from "./reconcile-report.js";

/**
 * The data-path side of weft. A backend knows nothing of etcd: the daemon hands it the
 * own lease and peer changes; the backend tells the daemon what the lease must advertise.
 *
 * Lifecycle, driven by src/daemon.ts:
 *   1. register()   before the lease is acquired: create what the lease advertises
 *                    (e.g. the vxlan device, whose MAC goes into BackendData) and report the MTU.
 *   2. activate()   with the own lease: address the device, routes for the Network, open engines.
 *                    Called again if the daemon had to re-acquire a different subnet.
 *   3. applyPeers() for every batch of peer changes (the first batch is the initial snapshot).
 *   4. reconcile()  periodically: repair kernel state the backend owns; the report holds typed
 *                    objects and changes (reconcile-report.ts), formatted only by whoever logs or prints them.
 *   5. stop()       graceful: kernel backends leave their state in place so a restart is hitless.
 */
export interface Backend {
  readonly type: string;
  register(): Promise<BackendRegistration>;
  activate(ownLease: Lease): Promise<void>;
  applyPeers(events: readonly PeerEvent[]): Promise<void>;
  reconcile(options: { dryRun: boolean }): Promise<ReconcileReport>;
  stop(): Promise<void>;
  /**
   * vxlan backends: a peer advertises our VtepMAC (a cloned state dir) and we are the younger, so
   * take a new random MAC (device and saved file) and return what the lease must advertise now.
   */
  renewVtepMac?(): Promise<BackendRegistration["attrs"]>;
  /** Facts about the data path for /readyz (wireguard: which implementation runs); values never secret. */
  dataPathDetails?(): Record<string, string>;
}

export interface BackendRegistration {
  /** What goes into the lease value besides PublicIP/PublicIPv6. */
  attrs: Pick<LeaseAttrs, "backendType" | "backendData" | "backendV6Data">;
  /** The MTU containers must use (FLANNEL_MTU in subnet.env). */
  mtu: number;
}

export interface BackendContext {
  network: NetworkConfig;
  /** The Backend object of the network config, keys as written (match them case-insensitively). */
  options: Readonly<Record<string, unknown>>;
  external: ExternalInterface;
  logger: Logger;
  metrics: Registry;
  /** A directory the backend may keep state in across restarts (e.g. a userspace VtepMAC). */
  stateDir: string;
  /**
   * Set by the daemon: what the backend advertises changed on its own (a rotated WireGuard key),
   * so the own lease is re-put with these attrs. Resolves true once written; false if it could
   * not be now (no lease yet, or re-acquiring: the new attrs go into the next one).
   */
  readvertise?: (attrs: BackendRegistration["attrs"]) => Promise<boolean>;
  /**
   * Set by the daemon: a userspace data path survives restarts (persistent TUN, snapshot in
   * stateDir, fds parked at stop for holdMs; 0 = not parked). Absent (a backend used on its
   * own, as tests do): the data path lives and dies with the backend object.
   */
  restarts?: {
    holdMs: number;
    /** Under systemd: the unit's fd store, which keeps the fds instead of a holder (it would die with the unit's cgroup). */
    fdStore?: FdStore;
  };
}

export interface BackendFactory {
  readonly type: string;
  /**
   * Validates the backend options of the network config. Throws an Error whose message names
   * the field (e.g. `Backend.VNI: "x" is not an integer`). Called by `weft config set` too.
   */
  validateOptions(options: Readonly<Record<string, unknown>>): void;
  /** Refuses a network the backend cannot carry (the userspace ones: an IPv6-only network); `weft config set` and create() call it. */
  validateNetwork?(network: NetworkConfig): void;
  create(context: BackendContext): Backend;
}
