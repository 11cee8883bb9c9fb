import type { Clock, ClockTimer } from '../clock.js';

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told: `advanceTo`/`advance` set the time and run the timers that
 * fall due, in time order. The engine and the test environment's control plane take their time
 * from it, so a week-long sleep takes no wall time.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock(Date.parse('2030-01-01T00:00:00Z'));
 * clock.setTimer(() => console.log('a day later'), 24 * 3600_000);
 * clock.advance(24 * 3600_000); // prints
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: PendingTimer[] = [];

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): ClockTimer {
    const timer: PendingTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    if (ms <= 0) {
      // Due now: run on the next turn, as setTimeout(fn, 0) would.
      setImmediate(() => {
        if (!timer.cancelled) fn();
      });
      return { cancel: () => void (timer.cancelled = true) };
    }
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.#timers = this.#timers.filter((t) => t !== timer);
      },
    };
  }

  /** When the earliest pending timer is due, if any. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.#timers) if (next === undefined || t.at < next) next = t.at;
    return next;
  }

  /** Moves the clock forward to `at` (never back), running every timer due by then in time order. */
  advanceTo(at: number): void {
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= at).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      if (!due.cancelled) due.fn();
    }
    this.#now = Math.max(this.#now, at);
  }

  /** Moves the clock forward by `ms`, running the timers that fall due. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }
}
