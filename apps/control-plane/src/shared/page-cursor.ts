import { isId } from '@cairn/common';
import { invalidField } from '../domain.js';

/** Where a keyset page ends: the last row's creation time (microseconds, UTC) and ID. */
export interface PagePosition {
  readonly createdAt: string;
  readonly id: string;
}

/** The opaque `nextCursor` of a list for the position its page ended at. */
export function encodeCursor(position: PagePosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url');
}

/** The position a `cursor` query parameter names; INVALID_ARGUMENT (field `cursor`) for anything this API did not return. */
export function decodeCursor(cursor: string): PagePosition {
  const bad = invalidField(
    'cursor',
    'query parameter cursor is not a cursor this API returned: use nextCursor from a previous page, or omit it',
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad;
  const [createdAt, id] = parsed as unknown[];
  if (typeof createdAt !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(createdAt) || typeof id !== 'string' || !isId(id)) {
    throw bad;
  }
  return { createdAt, id };
}
