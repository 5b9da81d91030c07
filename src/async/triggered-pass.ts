import type { Logger } from "pino";
import { Backoff } from "./backoff.js";

/**
 * At least `burst` repairs within `windowMs` mean something keeps undoing them (a person or a
 * script deleting things one by one is slower); `calmMs` without a repair ends it.
 */
export interface FightDetection {
  burst: number;
  windowMs: number;
  calmMs: number;
}
const FIGHT: FightDetection = { burst: 10, windowMs: 10_000, calmMs: 60_000 };
const THROTTLED_FIRST_MS = 1000;

export interface TriggeredPassOptions {
  /** What the pass does, for log lines: "reconciling kernel state". */
  what: string;
  /** The pass; resolves true when it changed something (a repair). Never run twice at once. */
  run: () => Promise<boolean>;
  /** Events within this long of each other make one pass (a burst of netlink lines, a whole nft transaction). */
  debounceMs: number;
  /** The periodic pass while events are watched: the backstop for a missed event. */
  backstopMs: number;
  /** The periodic pass while they are not (the monitor is down, or part of the state is invisible to it). */
  pollMs: number;
  logger: Logger;
  /** Tests only: other thresholds than FIGHT's. */
  fight?: FightDetection;
}

/**
 * A repair pass run on events, with a periodic pass as the backstop:
 *   - trigger() runs a pass `debounceMs` after the first event of a burst; events during a pass
 *     make one more pass after it (which also sees the echo of the pass's own repairs, finds
 *     nothing and ends the chain: a pass that changes nothing causes no events);
 *   - the periodic pass runs `backstopMs` after the last pass while setWatched(true), `pollMs`
 *     otherwise, and `pollMs` after a pass that repaired something (a repair that failed in the
 *     kernel causes no event, so this is its retry);
 *   - when passes keep repairing (FIGHT: another agent undoing weft's state, which would
 *     otherwise be fought at event speed), event passes wait 1 s, doubling up to `pollMs`, until
 *     the repairs have stopped for a while. Said once each way.
 */
export class TriggeredPass {
  private readonly options: TriggeredPassOptions;
  private running = false;
  /** An event arrived during the running pass. */
  private again = false;
  private watched = false;
  private stopped = true;
  private eventTimer: NodeJS.Timeout | undefined;
  private periodicTimer: NodeJS.Timeout | undefined;
  private periodicDueAt = 0;
  private readonly fight: FightDetection;
  /** When the recent repairs happened (performance.now()), the last `fight.burst` at most. */
  private readonly repairs: number[] = [];
  private readonly throttle: Backoff;
  private throttled = false;

  constructor(options: TriggeredPassOptions) {
    this.options = options;
    this.fight = options.fight ?? FIGHT;
    this.throttle = new Backoff(Math.min(THROTTLED_FIRST_MS, options.pollMs), options.pollMs);
  }

  /** Arms the periodic pass (events are not watched until setWatched(true)). */
  start(): void {
    this.stopped = false;
    this.armPeriodic();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.eventTimer);
    clearTimeout(this.periodicTimer);
    this.eventTimer = this.periodicTimer = undefined;
  }

  /** Something the pass repairs may have changed. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.eventTimer) return;
    this.noteCalm();
    const delay = this.throttled ? this.throttle.next() : this.options.debounceMs;
    this.eventTimer = setTimeout(() => {
      this.eventTimer = undefined;
      void this.runPass();
    }, delay);
    this.eventTimer.unref();
  }

  /** Whether events cover the state now; the periodic pass follows (the sooner deadline is kept). */
  setWatched(watched: boolean): void {
    if (this.watched === watched) return;
    this.watched = watched;
    if (!this.stopped) this.armPeriodic();
  }

  private get intervalMs(): number {
    return this.watched ? this.options.backstopMs : this.options.pollMs;
  }

  /** The periodic pass `intervalMs` from now; an earlier one already due is kept unless a pass just ran. */
  private armPeriodic(afterPass = false, repaired = false): void {
    const inMs = repaired ? this.options.pollMs : this.intervalMs;
    const dueAt = performance.now() + inMs;
    if (this.periodicTimer && !afterPass && this.periodicDueAt <= dueAt) return;
    clearTimeout(this.periodicTimer);
    this.periodicDueAt = dueAt;
    this.periodicTimer = setTimeout(() => {
      this.periodicTimer = undefined;
      void this.runPass();
    }, inMs);
    this.periodicTimer.unref();
  }

  private async runPass(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.eventTimer);
    this.eventTimer = undefined;
    this.running = true;
    this.again = false;
    let repaired = false;
    try {
      repaired = await this.options.run();
    } catch (error) {
      this.options.logger.error({ err: error }, `${this.options.what} failed`);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    this.noteOutcome(repaired);
    this.armPeriodic(true, repaired);
    if (this.again) this.trigger();
  }

  private noteOutcome(repaired: boolean): void {
    const now = performance.now();
    if (repaired) {
      this.repairs.push(now);
      if (this.repairs.length > this.fight.burst) this.repairs.shift();
    }
    const oldest = this.repairs[0];
    if (!this.throttled && this.repairs.length >= this.fight.burst && oldest !== undefined && now - oldest <= this.fight.windowMs) {
      this.throttled = true;
      this.options.logger.warn(
        { repairs: this.repairs.length, windowMs: Math.round(now - oldest) },
        `${this.options.what}: ${this.repairs.length} repairs within ${((now - oldest) / 1000).toFixed(1)} s, something keeps changing it back; ` +
          `event passes now wait from ${this.throttle.peek() / 1000} s, doubling up to ${this.options.pollMs / 1000} s, until it stops`,
      );
    }
    this.noteCalm();
  }

  /** Throttled, and nothing repaired for `fight.calmMs`: back to passes at once. */
  private noteCalm(): void {
    const last = this.repairs[this.repairs.length - 1];
    if (!this.throttled || (last !== undefined && performance.now() - last < this.fight.calmMs)) return;
    this.throttled = false;
    this.repairs.length = 0;
    this.throttle.reset();
    this.options.logger.info(`${this.options.what}: no repairs for ${this.fight.calmMs / 1000} s; event passes run at once again`);
  }
}
