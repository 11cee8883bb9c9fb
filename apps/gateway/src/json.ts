import { CairnError, ErrorCodes, checkJsonValue } from '@cairn/common';

/** Where a JSON text stops being valid, and why. */
export interface JsonProblem {
  /** Offset in characters from the start. */
  readonly offset: number;
  /** 1-based line and column. */
  readonly line: number;
  readonly column: number;
  readonly problem: string;
}

const WS = new Set([' ', '\t', '\n', '\r']);

/**
 * Finds the first syntax error in a JSON text (RFC 8259), or undefined when it is valid.
 * V8's JSON.parse names the position for some errors only, and quotes the text for others; this
 * gives every error a line and column without echoing the body. Iterative, so deep nesting cannot
 * overflow the stack.
 */
export function locateJsonError(text: string): JsonProblem | undefined {
  let i = 0;
  // What the scanner expects next, inside a stack of open containers.
  const stack: Array<'{' | '['> = [];
  const fail = (problem: string): JsonProblem => {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < i && k < text.length; k++) {
      if (text[k] === '\n') {
        line++;
        lineStart = k + 1;
      }
    }
    return { offset: i, line, column: i - lineStart + 1, problem };
  };
  const skip = (): void => {
    while (i < text.length && WS.has(text[i]!)) i++;
  };
  const describe = (): string => (i >= text.length ? 'unexpected end of input' : `unexpected character ${JSON.stringify(text[i])}`);

  // Scans a scalar at i, or opens a container. Returns a problem or undefined.
  const value = (): JsonProblem | undefined => {
    skip();
    const c = text[i];
    if (c === '{' || c === '[') {
      stack.push(c);
      i++;
      return undefined;
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return undefined;
      }
    }
    return fail(`${describe()}, expected a value`);
  };
  const string = (): JsonProblem | undefined => {
    i++;
    for (;;) {
      if (i >= text.length) return fail('unterminated string');
      const c = text[i]!;
      if (c === '"') {
        i++;
        return undefined;
      }
      if (c < ' ') return fail('control character in string (escape it)');
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) return fail('invalid \\u escape in string');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return fail('invalid escape in string');
      } else i++;
    }
  };
  const number = (): JsonProblem | undefined => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '-' || m[0] === '') return fail('invalid number');
    i += m[0].length;
    return undefined;
  };

  let problem = value();
  if (problem) return problem;
  // After a value or an opening bracket: close containers, or continue with , and :
  let justOpened = stack.length > 0;
  while (stack.length > 0) {
    skip();
    const top = stack[stack.length - 1]!;
    const close = top === '{' ? '}' : ']';
    if (text[i] === close) {
      stack.pop();
      i++;
      justOpened = false;
      continue;
    }
    if (!justOpened) {
      if (text[i] !== ',') return fail(`${describe()}, expected ',' or '${close}'`);
      i++;
      skip();
    }
    if (top === '{') {
      if (text[i] !== '"') return fail(`${describe()}, expected a property name in double quotes`);
      problem = string();
      if (problem) return problem;
      skip();
      if (text[i] !== ':') return fail(`${describe()}, expected ':' after the property name`);
      i++;
    }
    const depth = stack.length;
    problem = value();
    if (problem) return problem;
    justOpened = stack.length > depth;
  }
  skip();
  if (i < text.length) return fail(`${describe()} after the JSON value`);
  return undefined;
}

/**
 * Parses a request body. An empty body is no body (undefined); a malformed one is CAIRN-1102 with
 * the line and column where parsing failed; one that parses but could not be stored as the same
 * JSON is refused with the code that says why.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    const where = locateJsonError(text);
    const at = where ? ` at line ${where.line}, column ${where.column} (offset ${where.offset}): ${where.problem}` : '';
    throw new CairnError(
      ErrorCodes.MALFORMED_JSON,
      `the request body is not valid JSON${at}. Send a JSON document with Content-Type: application/json.`,
    );
  }
  // What parsed but could not be stored and served back as the same JSON: nesting past the limit
  // (CAIRN-1173), numbers past a double (1e400, CAIRN-1174), lone surrogates (CAIRN-1175).
  checkJsonValue(parsed, 'the request body');
  return parsed;
}
