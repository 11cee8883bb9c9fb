import { Cron } from 'croner';
import { CairnError, ErrorCodes } from '@cairn/common';

/** The longest cron expression accepted. */
export const CRON_MAX_LENGTH = 200;
/** The longest IANA time zone name accepted. */
export const TIME_ZONE_MAX_LENGTH = 64;

/**
 * A validated cron expression in an IANA time zone, evaluated by croner. Five fields (minute
 * precision) or six (a leading seconds field); nicknames such as `@daily` work too.
 *
 * Daylight-saving changes follow croner (as Vixie cron): a *fixed-time* expression (one value in
 * each of the second, minute and hour fields, e.g. `30 2 * * *`) whose time falls into the hour
 * skipped in spring fires once at the first valid time after the gap (03:00 in Europe/Berlin), and
 * fires once, at the first occurrence, when its time occurs twice in autumn. Other expressions
 * (`30 * * * *`, `0 0-23/2 * * *`) skip the times in the gap and fire at both occurrences of a
 * repeated time.
 */
export class CronSchedule {
  readonly #cron: Cron;

  private constructor(
    readonly expression: string,
    readonly timeZone: string,
  ) {
    this.#cron = new Cron(expression, { paused: true, timezone: timeZone, mode: '5-or-6-parts' });
  }

  /** Validates the expression and the time zone; throws INVALID_ARGUMENT naming what is wrong. */
  static parse(expression: string, timeZone: string): CronSchedule {
    checkTimeZone(timeZone);
    if (expression.length > CRON_MAX_LENGTH) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `cron: the expression is longer than ${CRON_MAX_LENGTH} characters`);
    }
    let schedule: CronSchedule;
    try {
      schedule = new CronSchedule(expression.trim(), timeZone);
    } catch (error) {
      const reason = error instanceof Error ? error.message.replace(/^CronPattern: /, '') : String(error);
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        `cron: ${JSON.stringify(expression.slice(0, CRON_MAX_LENGTH))} is not a valid cron expression (${reason}). ` +
          'Use five fields (minute hour day-of-month month day-of-week, e.g. "30 2 * * *") or six with a leading seconds field.',
      );
    }
    if (schedule.next(new Date()) === null) {
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        `cron: ${JSON.stringify(expression)} never fires (no date matches it): check the day-of-month and month fields`,
      );
    }
    return schedule;
  }

  /** The first tick strictly after `after`, or null when there is none. */
  next(after: Date): Date | null {
    return this.#cron.nextRun(after);
  }

  /** The first tick at or after `at`. Ticks are whole seconds. */
  atOrAfter(at: Date): Date | null {
    return this.#cron.nextRun(new Date(at.getTime() - 1));
  }

  /** Up to `count` ticks strictly after `after`. */
  upcoming(after: Date, count: number): Date[] {
    const ticks: Date[] = [];
    let cursor: Date | null = after;
    while (ticks.length < count && (cursor = this.next(cursor)) !== null) ticks.push(cursor);
    return ticks;
  }

  /**
   * The ticks in [from, to), at most `limit` of them; `more` says whether further ticks in the
   * range were left out.
   */
  between(from: Date, to: Date, limit: number): { ticks: Date[]; more: boolean } {
    const ticks: Date[] = [];
    let tick = this.atOrAfter(from);
    while (tick !== null && tick < to) {
      if (ticks.length === limit) return { ticks, more: true };
      ticks.push(tick);
      tick = this.next(tick);
    }
    return { ticks, more: false };
  }
}

/** Throws INVALID_ARGUMENT unless `timeZone` is an IANA time zone this runtime knows. */
export function checkTimeZone(timeZone: string): void {
  const bad = (): CairnError =>
    new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `timeZone: ${JSON.stringify(timeZone.slice(0, TIME_ZONE_MAX_LENGTH))} is not an IANA time zone: use a name such as "Europe/Berlin", "America/New_York" or "UTC"`,
    );
  if (timeZone.length === 0 || timeZone.length > TIME_ZONE_MAX_LENGTH || !/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(timeZone)) throw bad();
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw bad();
  }
}
