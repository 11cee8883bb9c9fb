import { CairnError, ErrorCodes, checkJsonValue } from '@cairn/common';

/** Step results and outputs may nest deeper than request bodies; past this JSON.stringify itself risks the stack. */
const STORED_MAX_DEPTH = 2_000;

/**
 * Payloads are JSON. `undefined` (a step or workflow that returns nothing) is kept as an empty
 * text so replay gives back `undefined`, not `null`.
 */
/** JSON.stringify typed as it behaves: undefined for a function or a symbol. */
function stringify(value: unknown): string | undefined {
  return JSON.stringify(value);
}

export function encodeJson(value: unknown, what: string): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  // JSON.stringify would store NaN, Infinity and 1e400 as null and a lone surrogate as U+FFFD:
  // what is read back must be what was written, so such a value is refused instead.
  try {
    checkJsonValue(value, what, STORED_MAX_DEPTH);
  } catch (cause) {
    throw new CairnError(ErrorCodes.NOT_SERIALIZABLE, `${CairnError.from(cause).rawMessage} Return plain JSON values.`, { cause });
  }
  let text: string | undefined;
  try {
    text = stringify(value);
  } catch (cause) {
    throw new CairnError(
      ErrorCodes.NOT_SERIALIZABLE,
      `${what} is not JSON-serializable: ${(cause as Error).message}. Return plain JSON values.`,
      {
        cause,
      },
    );
  }
  if (text === undefined) {
    throw new CairnError(ErrorCodes.NOT_SERIALIZABLE, `${what} is not JSON-serializable (a function or symbol). Return plain JSON values.`);
  }
  return Buffer.from(text, 'utf8');
}

export function decodeJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  return JSON.parse(bytes.toString('utf8')) as unknown;
}
