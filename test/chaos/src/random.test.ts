import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from './random.js';

describe('seeded random', () => {
  it('replays the same draws from the same seed and stream, and different ones otherwise', () => {
    const draws = (seed: number, stream: number) => {
      const r = new Random(seed, stream);
      return Array.from({ length: 20 }, () => r.int(0, 1_000_000));
    };
    assert.deepEqual(draws(42, 0), draws(42, 0));
    assert.notDeepEqual(draws(42, 0), draws(43, 0));
    assert.notDeepEqual(draws(42, 0), draws(42, 1));
  });

  it('draws weighted choices in proportion', () => {
    const r = new Random(7, 0);
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 10_000; i++) counts[r.weighted({ a: 1, b: 3 })]++;
    assert.ok(counts.b > 2.5 * counts.a && counts.b < 3.5 * counts.a, JSON.stringify(counts));
  });
});
