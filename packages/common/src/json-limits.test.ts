// Values that parse as JSON but would not come back as the same JSON: nesting past the limit,
// numbers past a double, lone surrogates. Each is refused with its code and the place, never the value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CairnError } from './errors.js';
import { MAX_JSON_DEPTH, checkJsonValue, jsonDepth } from './json-limits.js';

const refused = (value: unknown, code: string, message: RegExp): void => {
  assert.throws(
    () => checkJsonValue(value, 'the run input'),
    (err: unknown) => {
      assert.ok(err instanceof CairnError);
      assert.equal(err.code, code);
      assert.match(err.message, message);
      return true;
    },
  );
};

describe('checkJsonValue', () => {
  it('accepts plain JSON, paired surrogates and the largest finite doubles', () => {
    checkJsonValue({ a: [1, -1.7976931348623157e308, 'ok 😀', null, true, { b: {} }] }, 'the run input');
    checkJsonValue('😀', 'the run input');
    checkJsonValue(undefined, 'the run input');
  });

  it('refuses 1e400 (Infinity after parsing) and NaN, naming the place', () => {
    refused(JSON.parse('{"amounts":[1,1e400]}'), 'CAIRN-1174', /at \/amounts\/1 .*would be stored as null/);
    refused(Number.NaN, 'CAIRN-1174', /at its root/);
  });

  it('refuses a lone surrogate in a string or a property name, without echoing it', () => {
    refused(JSON.parse('{"name":"\\ud800"}'), 'CAIRN-1175', /a string at \/name with a lone UTF-16 surrogate/);
    refused(JSON.parse('{"x":{"\\udc00":1}}'), 'CAIRN-1175', /a property name at \/x/);
    try {
      checkJsonValue({ s: 'ab\ud800' }, 'the run input');
    } catch (err) {
      assert.ok(!/\p{Cs}/u.test((err as Error).message), 'the message is well-formed itself');
    }
  });

  it('refuses nesting past the limit without recursion, even 100,000 levels deep', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    refused(deep, 'CAIRN-1173', new RegExp(`nested more than ${MAX_JSON_DEPTH} levels`));
    assert.equal(jsonDepth(deep, 10), 11, 'stops counting past the limit');
    assert.equal(jsonDepth({ a: [{}] }), 3);
    assert.equal(jsonDepth(5), 0);
  });
});
