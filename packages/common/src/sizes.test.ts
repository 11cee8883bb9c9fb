import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { coarseSize, coarseSizeBig } from './sizes.js';

describe('coarseSize', () => {
  test('hides the difference between small values', () => {
    assert.equal(coarseSize(Buffer.byteLength('true')), coarseSize(Buffer.byteLength('false')));
    assert.equal(coarseSize(Buffer.byteLength('{"approved":true}')), coarseSize(Buffer.byteLength('{"approved":false}')));
  });

  test('rounds up to 64 bytes, then to powers of two', () => {
    assert.deepEqual([0, 1, 64, 65, 128, 129, 1000, 1024, 1025].map(coarseSize), [0, 64, 64, 128, 128, 256, 1024, 1024, 2048]);
    assert.equal(coarseSize(-1), 0);
    assert.equal(coarseSizeBig(3n), 64n);
  });

  test('leaves a size class unchanged', () => {
    for (const n of [0, 64, 128, 4096, 2 ** 40]) assert.equal(coarseSize(n), n);
  });
});
