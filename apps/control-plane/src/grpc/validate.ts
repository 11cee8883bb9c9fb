import { coarseSize } from '@cairn/common';
import { residencyViolations, type DescMessage, type MessageShape } from '@cairn/proto';
import { invalidField } from '../domain.js';

// Times cross as ms since the epoch; a JS Date holds up to 8.64e15.
const MAX_TIME_MS = 8_640_000_000_000_000n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Throws naming the first field whose value breaks its residency class (free text in a NAME
 * field, a malformed ID or digest). The value itself is never echoed.
 */
export function checkResidency<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
  const violation = residencyViolations(schema, message)[0];
  if (violation) throw invalidField(violation.field, `field ${violation.path} ${violation.problem}`);
}

/** A required string field (its format is already checked by {@link checkResidency}). */
export function required(value: string, field: string, path = field): string {
  if (value === '') throw invalidField(field, `field ${path} is required`);
  return value;
}

export function optional(value: string): string | null {
  return value === '' ? null : value;
}

/** A TIME field: 0 means none. */
export function time(value: bigint, field: string, path = field): Date | null {
  if (value === 0n) return null;
  if (value < 0n || value > MAX_TIME_MS) throw invalidField(field, `field ${path} is not a time in milliseconds since the Unix epoch`);
  return new Date(Number(value));
}

/** A size or count carried as uint64. */
export function size(value: bigint, field: string, path = field): number {
  if (value > MAX_SAFE) throw invalidField(field, `field ${path} is too large`);
  return Number(value);
}

/**
 * A size in bytes: checked like {@link size}, then reduced to its size class. Data planes send size
 * classes already; one that sends an exact size (an older release) is not stored exactly either.
 */
export function byteSize(value: bigint, field: string, path = field): number {
  return coarseSize(size(value, field, path));
}

/** A closed enum value: must be one this build knows, and not UNSPECIFIED unless allowed. */
export function enumValue<T extends number>(value: T, known: object, field: string, allowUnspecified = false): T {
  if ((value === 0 && !allowUnspecified) || (value !== 0 && typeof (known as Record<number, unknown>)[value] !== 'string')) {
    throw invalidField(field, `field ${field} has ${value === 0 ? 'no value' : `the unknown value ${value}`}`);
  }
  return value;
}
