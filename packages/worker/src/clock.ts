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
