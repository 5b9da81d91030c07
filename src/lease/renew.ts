import type { Logger } from "pino";
import { formatDuration } from "../observe/format-duration.js";
import type { LeaseStore } from "./lease-store.js";
import type { Lease } from "./types.js";
import { primarySubnet } from "./subnet-key.js";
import { Backoff } from "../async/backoff.js";
import { sleep } from "../async/sleep.js";

export interface LeaseKeeperOptions {
  store: LeaseStore;
  logger: Logger;
  /** Renew this long before expiry (--subnet-lease-renew-margin). */
  renewMarginMs: number;
  /** Wait between failed renewals; shortened as expiry approaches. flanneld uses one minute. */
  retryMs?: number;
  onRenewed?: (lease: Lease) => void;
  onRenewFailed?: (error: Error) => void;
  /** The etcd lease is gone (expired during an outage, revoked): the daemon re-acquires. */
  onExpired: (lease: Lease) => void;
}

const DEFAULT_RETRY_MS = 60_000;
const FIRST_RETRY_MS = 5000;
// Node timers overflow past ~24.8 days; a 24 h TTL stays well below that.
const MAX_WAIT_MS = 2 ** 31 - 1;

/**
 * Keeps the own lease alive: at expiry − margin, one KeepAlive on the same etcd lease (so no
 * orphaned leases pile up), retried on failure until it works or the lease is known gone.
 * Reservations have no TTL and are never renewed. stop() ends every wait at once.
 */
export class LeaseKeeper {
  private lease: Lease | undefined;
  private readonly stopping = new AbortController();
  /** Ends the wait for the next renewal when track() or a retry schedules another. */
  private pendingWait: AbortController | undefined;
  private readonly retries: Backoff;

  constructor(private readonly options: LeaseKeeperOptions) {
    const retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.retries = new Backoff(Math.min(FIRST_RETRY_MS, retryMs), retryMs);
  }

  /** Starts (or restarts) keeping `lease` alive. */
  track(lease: Lease): void {
    this.lease = lease;
    this.retries.reset();
    this.schedule(this.delayUntilRenewal(lease));
  }

  stop(): void {
    this.stopping.abort();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private delayUntilRenewal(lease: Lease): number | undefined {
    if (lease.reservation || !lease.expiresAt) return undefined;
    return Math.max(0, lease.expiresAt.getTime() - this.options.renewMarginMs - Date.now());
  }

  private schedule(delayMs: number | undefined): void {
    this.pendingWait?.abort();
    this.pendingWait = undefined;
    if (delayMs === undefined || this.stopped) return;
    const lease = this.lease;
    if (lease?.expiresAt) {
      this.options.logger.info(
        { subnet: primarySubnet(lease).toString(), renewAt: new Date(Date.now() + delayMs).toISOString(), expiresAt: lease.expiresAt.toISOString() },
        `renewing the lease in ${formatDuration(delayMs)}`,
      );
    }
    const wait = new AbortController();
    this.pendingWait = wait;
    const signal = AbortSignal.any([this.stopping.signal, wait.signal]);
    void sleep(Math.min(delayMs, MAX_WAIT_MS), signal, { unref: true }).then(() => {
      if (!signal.aborted) void this.renew();
    });
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease?.etcdLeaseId || this.stopped) return;
    const { store, logger } = this.options;
    try {
      const ttl = await store.keepAliveOnce(lease.etcdLeaseId);
      if (this.stopped || this.lease !== lease) return;
      if (ttl === undefined) {
        logger.warn({ subnet: primarySubnet(lease).toString(), etcdLease: lease.etcdLeaseId }, "the lease has expired in etcd; acquiring again");
        this.lease = undefined;
        this.options.onExpired(lease);
        return;
      }
      this.retries.reset();
      const renewed: Lease = { ...lease, expiresAt: new Date(Date.now() + ttl * 1000) };
      this.lease = renewed;
      this.options.onRenewed?.(renewed);
      this.schedule(this.delayUntilRenewal(renewed));
    } catch (error) {
      if (this.stopped || this.lease !== lease) return;
      this.options.onRenewFailed?.(error as Error);
      // Back off from 5 s to the retry interval, but try again well before the lease runs out.
      const backoff = this.retries.next();
      const left = lease.expiresAt ? lease.expiresAt.getTime() - Date.now() : Infinity;
      const retryMs = left > 2000 ? Math.max(1000, Math.min(backoff, left / 2)) : backoff;
      logger.error({ err: error, subnet: primarySubnet(lease).toString(), retryInMs: Math.round(retryMs) }, "renewing the lease failed; retrying");
      this.schedule(retryMs);
    }
  }
}
