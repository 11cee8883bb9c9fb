import ms from 'ms';
import { CairnError, ErrorCodes } from './errors.js';

/**
 * A length of time: milliseconds as a number, or a string the `ms` library understands
 * (`'500ms'`, `'30s'`, `'5m'`, `'2h'`, `'7d'`). Workflow code, the registry's REST API and the
 * CLI's override file all accept it, so a duration reads the same everywhere.
 *
 * @example
 * ```ts
 * await ctx.sleep('5m');
 * await ctx.sleep(250);
 * ```
 */
export type Duration = number | string;

/**
 * Converts a {@link Duration} to whole milliseconds, throwing a clear `CAIRN-1101` error for a
 * negative, non-finite or unreadable value. `what` names the value in the message.
 *
 * @example
 * ```ts
 * toMilliseconds('1.5s', 'timeout'); // 1500
 * toMilliseconds(200, 'timeout'); // 200
 * ```
 */
export function toMilliseconds(duration: Duration, what = 'duration'): number {
  const value = parseDuration(duration);
  if (value === undefined) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid ${what} ${JSON.stringify(duration)}: give milliseconds as a non-negative number or a string such as '500ms', '30s', '5m', '2h' or '7d'.`,
    );
  }
  return value;
}

/** Whole milliseconds of a duration, or undefined when it is negative, not finite or unreadable. */
export function parseDuration(duration: unknown): number | undefined {
  let value: number | undefined;
  if (typeof duration === 'number') value = duration;
  else if (typeof duration === 'string' && duration.trim() !== '') {
    // `ms` returns undefined (typed as number) for text it cannot read.
    value = (ms as (text: string) => number | undefined)(duration.trim());
  }
  if (value === undefined || !Number.isFinite(value) || value < 0) return undefined;
  return Math.round(value);
}
