import { CairnError, ErrorCodes } from './errors.js';

/** How deeply a JSON value (an input, a signal body, a JSON Schema) may nest, by default. */
export const MAX_JSON_DEPTH = 128;

// With the u flag a pair is one code point; only a lone surrogate is in the Cs category.
const LONE_SURROGATE = /\p{Cs}/u;

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** A JSON Pointer for the error message, shortened in the middle when it is long. */
function pointer(path: readonly string[]): string {
  const text = path.map((p) => `/${escapePointer(p)}`).join('');
  return text.length <= 120 ? text : `${text.slice(0, 60)}…${text.slice(-40)}`;
}

/**
 * Checks that a parsed JSON value can be stored and served back as the same JSON: nested at most
 * `maxDepth` levels (CAIRN-1173), every number finite (`1e400` parses to Infinity, which
 * JSON.stringify would store as `null`: CAIRN-1174), every string and key well-formed UTF-16 (a
 * lone surrogate such as `"\ud800"` cannot be encoded as UTF-8: CAIRN-1175). Iterative, so a
 * value nested thousands of levels cannot overflow the stack. `what` names the value in the
 * message ("the run input"); the message names the place (a JSON Pointer), never the value.
 */
export function checkJsonValue(value: unknown, what: string, maxDepth = MAX_JSON_DEPTH): void {
  // Depth-first; each entry links to its parent, so the path is only built for a message.
  interface Entry {
    readonly value: unknown;
    readonly key: string;
    readonly parent: Entry | null;
    readonly depth: number;
  }
  const pathOf = (entry: Entry | null): string[] => {
    const path: string[] = [];
    for (let e = entry; e !== null && e.parent !== null; e = e.parent) path.unshift(e.key);
    return path;
  };
  const stack: Entry[] = [{ value, key: '', parent: null, depth: 0 }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const v = entry.value;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) {
        const at = pointer(pathOf(entry));
        throw new CairnError(
          ErrorCodes.NUMBER_OUT_OF_RANGE,
          `${what} has a number at ${at || 'its root'} that is not a finite 64-bit float (1e400 parses to Infinity; NaN and Infinity are not JSON): ` +
            'it would be stored as null. Send it as a string, or a number within ±1.7976931348623157e308.',
          { details: { path: at } },
        );
      }
    } else if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) throw lone(what, pathOf(entry), 'a string');
    } else if (typeof v === 'object' && v !== null) {
      if (entry.depth >= maxDepth) {
        throw new CairnError(
          ErrorCodes.TOO_DEEP,
          `${what} is nested more than ${maxDepth} levels deep (at ${pointer(pathOf(entry).slice(0, 8))}…): flatten it, or pass deep data as a string.`,
          { details: { maxDepth } },
        );
      }
      const depth = entry.depth + 1;
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], key: String(i), parent: entry, depth });
      } else {
        const entries = Object.entries(v as Record<string, unknown>);
        for (let i = entries.length - 1; i >= 0; i--) {
          const [key, child] = entries[i]!;
          if (LONE_SURROGATE.test(key)) throw lone(what, pathOf(entry), 'a property name');
          stack.push({ value: child, key, parent: entry, depth });
        }
      }
    }
  }
}

/** How deeply a parsed JSON value nests (0 for a scalar), counted without recursion; stops past `limit`. */
export function jsonDepth(value: unknown, limit = Number.MAX_SAFE_INTEGER): number {
  let deepest = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const here = depth + 1;
    if (here > deepest) deepest = here;
    if (deepest > limit) return deepest;
    for (const child of Object.values(v as Record<string, unknown>)) stack.push({ value: child, depth: here });
  }
  return deepest;
}

function lone(what: string, path: readonly string[], where: string): CairnError {
  return new CairnError(
    ErrorCodes.INVALID_UNICODE,
    `${what} has ${where} at ${pointer(path) || 'its root'} with a lone UTF-16 surrogate (such as "\\ud800" without its pair): ` +
      'it is not valid Unicode and cannot be stored as JSON text. Send well-formed Unicode (pair the surrogates, or remove them).',
    { details: { path: pointer(path) } },
  );
}
