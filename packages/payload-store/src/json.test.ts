// What a step or workflow returns is stored as JSON and read back on replay: a value JSON.stringify
// would change (NaN, Infinity and 1e400 become null, a lone surrogate becomes U+FFFD) is refused
// instead of being replayed as something else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CairnError } from '@cairn/common';
import { decodeJson, encodeJson } from './json.js';

const refused = (value: unknown, message: RegExp): void => {
  assert.throws(
    () => encodeJson(value, 'the output of step "fetch"'),
    (err: unknown) => {
      assert.ok(err instanceof CairnError);
      assert.equal(err.code, 'CAIRN-2008');
      assert.match(err.message, message);
      return true;
    },
  );
};

describe('encodeJson', () => {
  it('round-trips plain JSON, paired surrogates and the largest doubles exactly', () => {
    const value = { a: [1, 1.7976931348623157e308, 'ok 😀', null, { b: true }] };
    assert.deepEqual(decodeJson(encodeJson(value, 'x')), value);
    assert.equal(decodeJson(encodeJson(undefined, 'x')), undefined);
  });

  it('refuses NaN, Infinity and a lone surrogate rather than store a different value', () => {
    refused({ score: Number.NaN }, /the output of step "fetch" has a number at \/score that is not a finite 64-bit float/);
    refused([Number.POSITIVE_INFINITY], /at \/0 /);
    refused({ name: 'x\ud800' }, /a string at \/name with a lone UTF-16 surrogate/);
  });
});
