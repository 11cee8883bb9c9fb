import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { CairnError, ErrorCodes } from './errors.js';

/**
 * The digest of a JSON Schema: SHA-256 (hex) over its RFC 8785 canonical JSON, so the same schema
 * has the same digest whatever the key order or number formatting it was written with. The data
 * plane's schema catalogue keys schemas by it, and it is all the control plane ever learns of a
 * schema.
 */
export function schemaDigest(schema: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(schema);
  } catch (cause) {
    throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `A schema must be plain JSON to be digested: ${(cause as Error).message}`, { cause });
  }
  if (text === undefined) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'A schema must be plain JSON to be digested.');
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
