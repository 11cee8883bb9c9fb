import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { ErrorCodes } from '@cairn/common';
import { Hasher, KeyRing, deriveDataKey, scopeOf } from './crypto.js';

const KEY = Buffer.alloc(32, 9);
const ring = new KeyRing([{ id: 'k1', key: KEY }]);
const runA = '0192f7a0-0000-7000-8000-00000000000a';
const runB = '0192f7a0-0000-7000-8000-00000000000b';

/** A blob as the store wrote it before per-run keys: `iv || tag || ciphertext` under the data key. */
function sealV1(key: Buffer, plain: Buffer, aad: string, iv = randomBytes(12)): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

describe('per-run data keys', () => {
  it('derives one key per run (and per schedule payload), never the data key itself', () => {
    assert.equal(scopeOf(`${runA}:journal:3`), runA);
    assert.equal(scopeOf(`${runA}:input`), runA);
    assert.equal(scopeOf('payload:p1'), 'payload:p1');
    const a = deriveDataKey(KEY, runA);
    assert.equal(a.length, 32);
    assert.ok(!a.equals(KEY));
    assert.ok(!a.equals(deriveDataKey(KEY, runB)));
    assert.ok(a.equals(deriveDataKey(KEY, runA)));
  });

  it('refuses a ciphertext of run A presented as run B', () => {
    const sealed = ring.seal(Buffer.from('jane@example.com'), `${runA}:input`);
    assert.equal(KeyRing.formatOf(sealed.blob), 2);
    assert.equal(ring.open(sealed, `${runA}:input`).toString(), 'jane@example.com');
    assert.throws(
      () => ring.open(sealed, `${runB}:input`),
      (err: { code?: string }) => err.code === ErrorCodes.DECRYPT_FAILED,
    );
    // Even with run A's AAD, run B's derived key does not open it: each run has its own AES key.
    const inner = sealed.blob.subarray(4);
    const forged = { keyId: 'k1', blob: Buffer.concat([sealed.blob.subarray(0, 4), inner]) };
    assert.throws(() => new KeyRing([{ id: 'k1', key: deriveDataKey(KEY, runB) }]).open(forged, `${runA}:input`));
  });

  it('still opens values sealed before per-run keys (format 1), even one whose IV starts like the format 2 marker', () => {
    const old = sealV1(KEY, Buffer.from('old'), `${runA}:output`);
    assert.equal(ring.open({ keyId: 'k1', blob: old }, `${runA}:output`).toString(), 'old');
    const unlucky = sealV1(
      KEY,
      Buffer.from('unlucky'),
      `${runA}:output`,
      Buffer.concat([Buffer.from([0xca, 0x12, 0x4e, 0x02]), randomBytes(8)]),
    );
    assert.equal(KeyRing.formatOf(unlucky), 2);
    assert.equal(ring.open({ keyId: 'k1', blob: unlucky }, `${runA}:output`).toString(), 'unlucky');
    assert.throws(
      () => ring.open({ keyId: 'k1', blob: old }, `${runB}:output`),
      (err: { code?: string }) => err.code === ErrorCodes.DECRYPT_FAILED,
    );
  });
});

describe('digest keys per purpose and workflow', () => {
  const hasher = new Hasher(Buffer.alloc(32, 3));
  const email = 'jane@example.com';

  it('give unrelated digests for one value used for different purposes or in different workflows (version 2)', () => {
    const refund = hasher.forRun('refund', 2);
    const signup = hasher.forRun('signup', 2);
    const all = [refund.idempotency(email), refund.step(email), refund.approval(email), signup.idempotency(email), signup.step(email)];
    for (const d of all) assert.match(d, /^[0-9a-f]{64}$/);
    assert.equal(new Set(all).size, all.length);
    assert.ok(!all.includes(hasher.digest(email)), 'no version 2 digest is the single-key one');
    assert.equal(refund.step(email), hasher.forRun('refund', 2).step(email), 'stable for replays');
  });

  it('keep the single-key digests for runs started before (version 1), so their journals still match', () => {
    const legacy = hasher.forRun('refund', 1);
    assert.equal(legacy.step(email), hasher.digest(email));
    assert.equal(legacy.approval(email), hasher.digest(email));
    assert.equal(legacy.idempotency(email), hasher.digest(email));
  });
});
