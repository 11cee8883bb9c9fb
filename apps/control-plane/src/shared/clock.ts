/**
 * Where the schedule ticker, trigger-now and backfill take the time from. Production uses the
 * system clock; tests hand `AppModule.forRoot` a clock they move by hand, so daylight-saving
 * changes and downtime can be driven without waiting.
 */
export interface Clock {
  now(): Date;
}

/** DI token of the {@link Clock}. */
export const CLOCK = Symbol('Clock');

export const systemClock: Clock = { now: () => new Date() };
