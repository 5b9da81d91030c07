import { errorMessage } from "../errors/error-message.js";
import { EtcdAccessError } from "./errors.js";

/**
 * etcd did not answer since `since`; `lastError` is the newest failure, `what` the call or
 * stream it hit; `refused`: etcd is there but refuses weft's certificate or password (the fix is
 * the credentials, not the network).
 */
export interface Unreachable {
  since: Date;
  lastError: string;
  what: string;
  refused: boolean;
}

export interface ReachabilityObserver {
  /** Every failure to reach etcd (a call or a broken watch stream), for a counter. */
  onFailure?(error: unknown, what: string): void;
  /** etcd stopped answering: the first failure after an answer. */
  onUnreachable?(state: Unreachable): void;
  /** etcd answers again after `down` milliseconds. */
  onReachable?(downMs: number): void;
}

/**
 * Whether etcd answers, as seen from every call and watch stream: the first failure after an
 * answer marks it unreachable, the next answer reachable again. Only transitions are reported,
 * so a long outage is one line in the log, not one per retry.
 */
export class StoreReachability {
  private down: Unreachable | undefined;
  private readonly observers: ReachabilityObserver[] = [];

  observe(observer: ReachabilityObserver): void {
    this.observers.push(observer);
  }

  /** Undefined while etcd answers. */
  current(): Unreachable | undefined {
    return this.down;
  }

  failed(error: unknown, what: string): void {
    for (const observer of this.observers) observer.onFailure?.(error, what);
    const refused = causedByRefusal(error);
    if (this.down) {
      this.down = { ...this.down, lastError: errorMessage(error), what, refused };
      return;
    }
    this.down = { since: new Date(), lastError: errorMessage(error), what, refused };
    for (const observer of this.observers) observer.onUnreachable?.(this.down);
  }

  answered(): void {
    if (!this.down) return;
    const downMs = Date.now() - this.down.since.getTime();
    this.down = undefined;
    for (const observer of this.observers) observer.onReachable?.(downMs);
  }
}

/** Whether etcd refused weft's credentials somewhere in the error's cause chain (a call error wraps the refusal). */
function causedByRefusal(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (cause instanceof EtcdAccessError) return true;
  }
  return false;
}
