// Where the engine takes time from. The system clock in production; a virtual clock in tests
// (`@cairn/worker/testing`), so waits of days run in milliseconds.

/** A timer set on a {@link Clock}. */
export interface ClockTimer {
  /** Stops the timer; its function will not run. */
  cancel(): void;
}

/**
 * The engine's source of time: `now()` for every timestamp it records (`ctx.now()`, step times,
 * sleep and signal deadlines, retry due times) and `setTimer` for its in-memory waits, backoffs
 * and attempt timeouts.
 *
 * @example
 * ```ts
 * const clock: Clock = systemClock;
 * const timer = clock.setTimer(() => console.log('due'), 1000);
 * timer.cancel();
 * ```
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Runs `fn` once `ms` milliseconds have passed on this clock. `unref`: the timer does not keep
   * the process alive (system clock).
   */
  setTimer(fn: () => void, ms: number, options?: { readonly unref?: boolean }): ClockTimer;
}

/**
 * The real clock: `Date.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * new Engine({ store, hasher, workflows, clock: systemClock });
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer(fn: () => void, ms: number, options?: { readonly unref?: boolean }): ClockTimer {
    const timer = setTimeout(fn, ms);
    if (options?.unref) timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
});

/** Where a {@link ControlPlaneClock} reads the local clocks; tests skew them. */
export interface LocalClocks {
  /** The local wall clock, milliseconds since the epoch. Default `Date.now()`. */
  readonly wall?: () => number;
  /**
   * A monotonic clock in milliseconds from an arbitrary origin, which a step of the wall clock (an
   * operator's `date -s`, an NTP step) does not move. Default `performance.now()`.
   */
  readonly monotonic?: () => number;
}

/** One measurement of the control plane's clock. */
interface Sample {
  /** The control plane's time minus the monotonic clock at the midpoint of the round trip. */
  readonly base: number;
  /** The round trip, milliseconds: the estimate is off by at most half of it. */
  readonly roundTripMs: number;
}

/** Samples kept: the one with the shortest round trip among them wins. */
const SAMPLES_KEPT = 8;
/** A round trip longer than this says nothing useful about the offset (a stalled stream). */
const MAX_ROUND_TRIP_MS = 5000;
/**
 * How far two samples may disagree beyond their round trips before the older ones are dropped: a
 * machine that was suspended (the monotonic clock stood still) or a control-plane clock that was
 * stepped makes the old samples wrong, however short their round trips.
 */
const DISAGREEMENT_MS = 100;

/**
 * The control plane's time, as the worker's engine uses it. The control plane is authoritative for
 * time: it wakes suspended runs at the due times the worker journals, and compares deadlines with
 * its own clock. A worker whose wall clock is off would journal due times that are off by as much
 * (a sleep on a clock 50 s behind would wake at once), so the worker measures the control plane's
 * clock on every Welcome and heartbeat reply, NTP-style, and stamps and compares on that.
 *
 * Each measurement (`sample`) gives the control plane's time at the midpoint of the round trip, to
 * within half the round trip; the sample with the shortest round trip among the recent ones wins.
 * Between samples time runs on the monotonic clock, so a step of the local wall clock does not move
 * `now()`. Before the first sample `now()` is the local wall clock. Once runs are executing, `now()`
 * never goes backwards: `ctx.now()` values are journaled, and a run's timeline must not reverse
 * when the estimate moves back a few milliseconds (it holds at the last value instead).
 *
 * @example
 * ```ts
 * const clock = new ControlPlaneClock();
 * const sentAt = clock.monotonic();
 * // ... the reply arrives with the control plane's time
 * clock.sample(sentAt, clock.monotonic(), serverTimeMs);
 * new Engine({ store, hasher, workflows, clock });
 * ```
 */
export class ControlPlaneClock implements Clock {
  readonly #wall: () => number;
  readonly #monotonic: () => number;
  #samples: Sample[] = [];
  #best: Sample | undefined;
  #last = -Infinity;

  constructor(local: LocalClocks = {}) {
    this.#wall = local.wall ?? (() => Date.now());
    this.#monotonic = local.monotonic ?? (() => performance.now());
  }

  /** The monotonic clock samples are taken on (milliseconds, arbitrary origin). */
  monotonic(): number {
    return this.#monotonic();
  }

  /** The control plane's time now, in milliseconds since the epoch; never less than a value returned before. */
  now(): number {
    // Before the first sample (or with a control plane that does not send its time), the local clock.
    const t = this.#best ? Math.round(this.#best.base + this.#monotonic()) : this.#wall();
    if (t < this.#last) return this.#last;
    this.#last = t;
    return t;
  }

  /**
   * How far the control plane's clock is ahead of the local wall clock now, in milliseconds
   * (negative: behind); undefined before the first sample.
   */
  offsetMs(): number | undefined {
    if (!this.#best) return undefined;
    return Math.round(this.#best.base + this.#monotonic() - this.#wall());
  }

  /**
   * Records one measurement: a request sent at `sentAt` and its answer, stamped `serverTimeMs` by
   * the control plane, received at `receivedAt` (both on {@link monotonic}). Returns whether it was
   * used: a negative or very long round trip is not.
   */
  sample(sentAt: number, receivedAt: number, serverTimeMs: number): boolean {
    const roundTripMs = receivedAt - sentAt;
    if (!Number.isFinite(roundTripMs) || !Number.isFinite(serverTimeMs) || roundTripMs < 0 || roundTripMs > MAX_ROUND_TRIP_MS) {
      return false;
    }
    const sample: Sample = { base: serverTimeMs - (sentAt + receivedAt) / 2, roundTripMs };
    const first = this.#best === undefined;
    const best = this.#best;
    if (best && Math.abs(sample.base - best.base) > (sample.roundTripMs + best.roundTripMs) / 2 + DISAGREEMENT_MS) {
      this.#samples = [];
    }
    this.#samples.push(sample);
    if (this.#samples.length > SAMPLES_KEPT) this.#samples.shift();
    this.#best = this.#samples.reduce((a, b) => (b.roundTripMs < a.roundTripMs ? b : a));
    // Before the first sample no run has executed (runs are dispatched after the Welcome that
    // carries it), so the local clock's values need not bound the control plane's.
    if (first) this.#last = -Infinity;
    return true;
  }

  setTimer(fn: () => void, ms: number, options?: { readonly unref?: boolean }): ClockTimer {
    return systemClock.setTimer(fn, ms, options);
  }
}
