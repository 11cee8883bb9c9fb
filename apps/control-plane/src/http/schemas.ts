import { z } from 'zod';
import { ID_PATTERN, NAME_MAX_LENGTH, NAME_PATTERN, VERSION_MAX_LENGTH, VERSION_PATTERN } from '@cairn/common';

/** Shared pieces of the REST schemas. */
export const nameSchema = z
  .string()
  .max(NAME_MAX_LENGTH)
  .regex(NAME_PATTERN, 'expected a name: a letter, then letters, digits, _ . - (at most 100)');
export const versionSchema = z
  .string()
  .max(VERSION_MAX_LENGTH)
  .regex(VERSION_PATTERN, 'expected a version: a letter or digit, then letters, digits, _ . + - (at most 64)');
export const idSchema = z.string().regex(ID_PATTERN, 'expected a lowercase UUID');
export const isoTimeSchema = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 time such as 2026-01-31T09:00:00Z' });
/** A page size in a query string. */
export const limitSchema = z
  .string()
  .regex(/^\d{1,3}$/, 'expected a whole number from 1 to 200')
  .transform(Number)
  .refine((n) => n >= 1 && n <= 200, 'expected a whole number from 1 to 200')
  .optional();
