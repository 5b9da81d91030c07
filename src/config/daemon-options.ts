import type { StoreOptions } from "../store/store-options.js";
import type { InterfaceSelectionOptions } from "./interface-selection.js";

/** Everything `weft run` needs, after flags and FLANNELD_* variables are merged and checked. */
export interface DaemonOptions {
  store: StoreOptions;
  interfaceSelection: InterfaceSelectionOptions;
  subnetFile: string;
  /** Directory for state kept across restarts (e.g. VtepMACs of userspace devices). */
  stateDir: string;
  /** Renew this long before the lease expires (--subnet-lease-renew-margin, minutes). */
  renewMarginMs: number;
  /** TTL of newly granted leases (--subnet-lease-ttl; flanneld's fixed 24 h by default). */
  leaseTtlSeconds: number;
  ipMasq: boolean;
  ipMasqFullyRandom: boolean;
  forwardRules: boolean;
  /** How often traffic rules are re-checked (--iptables-resync, seconds). */
  rulesResyncMs: number;
  /** How often the backend's kernel state is reconciled against the leases. */
  reconcileIntervalMs: number;
  /** Health server; undefined when --healthz-port is 0 (flanneld's default: off). */
  healthz?: { host: string; port: number };
  /** --peer-probe-interval: probe every peer this often; undefined = off (the default). */
  peerProbeIntervalMs?: number;
  /**
   * --restart-hold: how long a stopped userspace daemon's holder keeps its TUN and socket fds
   * for the next start (docs/dataplane.md "Restarts"); 0 = no holder (systemd's fd store still
   * keeps them under a unit).
   */
  restartHoldMs: number;
}

export const MAX_RENEW_MARGIN_MINUTES = 1439;

/**
 * The periodic passes are backstops: kernel and nftables events trigger the repairs (daemon.ts
 * startPeriodicWork), so an idle host runs no commands between them. flanneld's --iptables-resync
 * default is 5 s; weft's is longer because it checks on every change as well.
 */
export const DEFAULT_RECONCILE_INTERVAL_SECONDS = 60;
export const DEFAULT_RULES_RESYNC_SECONDS = 60;
/** While events are not seen (a monitor down, an iptables-legacy table), passes run at least this often, as before there were events. */
export const POLL_RECONCILE_MS = 10_000;
export const POLL_RULES_RESYNC_MS = 5000;
