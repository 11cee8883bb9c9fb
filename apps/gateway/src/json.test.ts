import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CairnError } from '@cairn/common';
import { locateJsonError, parseJsonBody } from './json.js';

describe('locateJsonError', () => {
  it('accepts what JSON.parse accepts', () => {
    for (const text of [
      '{}',
      '[]',
      '0',
      '-1.5e+3',
      '"a\\u00e9\\n"',
      ' {"a": [1, {"b": null}, true, false], "c": {}} ',
      '[[[[]]]]',
      '{"__proto__": {"x": 1}}',
    ]) {
      assert.doesNotThrow(() => JSON.parse(text));
      assert.equal(locateJsonError(text), undefined, text);
    }
  });

  it('names the line and column where the text stops being JSON', () => {
    const cases: Array<[string, number, number, RegExp]> = [
      ['{"a": }', 1, 7, /expected a value/],
      ['{"a":1', 1, 7, /end of input.*expected ',' or '}'/],
      ['{a:1}', 1, 2, /property name/],
      ['[1,2,]', 1, 6, /expected a value/],
      ['{\n  "workflow": "x",\n  "input": tru\n}', 3, 12, /expected a value/],
      ['"abc', 1, 5, /unterminated string/],
      ['1 2', 1, 3, /after the JSON value/],
      ['{"a":"b\nc"}', 1, 8, /control character/],
      ['[01]', 1, 3, /expected ',' or ']'/],
      ['{"a" 1}', 1, 6, /expected ':'/],
    ];
    for (const [text, line, column, problem] of cases) {
      assert.throws(() => JSON.parse(text));
      const found = locateJsonError(text);
      assert.ok(found, text);
      assert.deepEqual([found.line, found.column], [line, column], `${text}: ${JSON.stringify(found)}`);
      assert.match(found.problem, problem, text);
    }
  });

  it('handles deep nesting without recursion', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(199_999);
    assert.match(locateJsonError(deep)?.problem ?? '', /end of input/);
  });
});

describe('parseJsonBody', () => {
  it('treats an empty body as no body', () => {
    assert.equal(parseJsonBody(''), undefined);
    assert.equal(parseJsonBody('  \n'), undefined);
  });

  it('reports a malformed body as CAIRN-1102 with its position and without echoing it', () => {
    const secret = 'secret-value-123';
    const err = (() => {
      try {
        parseJsonBody(`{"input": {"token": "${secret}", oops}}`);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof CairnError);
    assert.equal(err.code, 'CAIRN-1102');
    assert.match(err.message, /line 1, column 41/);
    assert.ok(!err.message.includes(secret), err.message);
  });
});
