import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FileKeyWrapper, generateWrappedKeySpec, keySourceOf, parseWrappedKeys, unwrapKeyRing } from './envelope.js';

describe('envelope keys', () => {
  const kek = randomBytes(32);
  const wrapper = new FileKeyWrapper(kek);

  it('wraps a fresh data key per ID, unwraps it into a key ring, and refuses another ID or key-encryption key', async () => {
    const spec = [await generateWrappedKeySpec('k2', wrapper), await generateWrappedKeySpec('k1', wrapper)].join(',');
    const wrapped = parseWrappedKeys(spec);
    const ring = await unwrapKeyRing(wrapped, wrapper);
    assert.deepEqual(ring.keyIds, ['k2', 'k1']);
    const sealed = ring.seal(Buffer.from('x'), 'run:input');
    assert.equal(sealed.keyId, 'k2');
    // A wrapped key moved to another ID, or unwrapped with another key-encryption key, is refused.
    await assert.rejects(wrapper.unwrap(wrapped[0]!.wrapped, 'k1'), /Wrapped encryption key "k1" does not unwrap/);
    await assert.rejects(new FileKeyWrapper(randomBytes(32)).unwrap(wrapped[0]!.wrapped, 'k2'), /does not unwrap/);
    assert.ok(!spec.includes(kek.toString('base64')));
  });

  it('names what is missing or doubled in the key variables', () => {
    const wrapped = parseWrappedKeys(`k1:${randomBytes(61).toString('base64')}`);
    assert.deepEqual(keySourceOf({ plain: undefined, wrapped, kms: undefined, keyFile: undefined, module: undefined }), {
      problems: ['  CAIRN_DP_KMS: is required with CAIRN_DP_WRAPPED_ENCRYPTION_KEYS (file or module)'],
    });
    const none = keySourceOf({ plain: undefined, wrapped: undefined, kms: undefined, keyFile: undefined, module: undefined });
    assert.match(JSON.stringify(none), /CAIRN_DP_ENCRYPTION_KEYS: is required/);
    assert.throws(() => parseWrappedKeys('k1:AA,k1:AA'), /listed twice/);
    assert.throws(() => parseWrappedKeys('nocolon'), /id:base64wrappedkey/);
    assert.throws(() => new FileKeyWrapper(randomBytes(16)), /must be 32 bytes/);
  });
});
