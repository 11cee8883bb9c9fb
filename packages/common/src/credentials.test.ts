import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  CredentialThrottle,
  credentialThrottled,
  retryAfterSeconds,
  sourceOf,
  weakTokenReason,
  type CredentialAttempt,
} from './credentials.js';

const attempt = (source: string, credential: string): CredentialAttempt => ({
  source,
  prefix: credential.slice(0, 12),
  digest: createHash('sha256').update(credential).digest('hex'),
});

describe('weakTokenReason', () => {
  test('random tokens pass, whatever their alphabet', () => {
    for (let i = 0; i < 200; i++) {
      assert.equal(weakTokenReason(randomBytes(32).toString('base64')), null);
      assert.equal(weakTokenReason(`cgt_${randomBytes(24).toString('base64url')}`), null);
      assert.equal(weakTokenReason(randomBytes(16).toString('hex')), null, 'a 128-bit hex token');
      assert.equal(weakTokenReason(`cgt_${randomUUID()}`), null);
    }
  });

  test('weak tokens are refused with a reason that never quotes them', () => {
    const cases: Array<[string, RegExp]> = [
      ['x', /is 1 characters long/],
      ['cgt_short-token', /is 15 characters long/],
      ['1'.repeat(10) + '23456789012345678901234', /bits of strength/],
      ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', /fewer than 8 different characters/],
      ['abcdefgh'.repeat(5), /repeated/],
      ['Passw0rd!ABCDEFGHIJKLMNOPQRSTUVWXYZ', /run of repeated or consecutive characters/],
      ['ZpQ9x!Lm3kaaaaaaaaaRt7Yw2Vb8Nc4Hd6Jf', /run of repeated or consecutive characters/],
    ];
    for (const [token, reason] of cases) {
      const problem = weakTokenReason(token);
      assert.ok(problem, `${token} is refused`);
      assert.match(problem, reason);
      assert.ok(!problem.includes(token), 'the reason does not quote the token');
      assert.match(problem, /openssl rand/);
    }
  });
});

describe('sourceOf', () => {
  test('IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
    assert.equal(sourceOf('203.0.113.7'), '203.0.113.7');
    assert.equal(sourceOf('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('2001:0db8:0001:0002:ffff:1:2:3'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('[2001:db8::1]'), '2001:db8:0:0::/64');
    assert.equal(sourceOf('::1'), '0:0:0:0::/64');
    assert.equal(sourceOf(undefined), 'unknown');
  });
});

describe('CredentialThrottle', () => {
  const clock = () => {
    let now = 1_000_000;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  };

  test('a guesser is throttled per address after the burst, and waits the refill', () => {
    const time = clock();
    const throttle = new CredentialThrottle({
      now: time.now,
      perSource: { burst: 3, refillMs: 1000 },
      perPrefix: { burst: 100, refillMs: 1 },
    });
    for (let i = 0; i < 3; i++) {
      const guess = attempt('198.51.100.1', `cak_guess-${i}-${randomUUID()}`);
      assert.equal(throttle.retryAfterMs(guess), 0);
      throttle.failed(guess);
    }
    const fourth = attempt('198.51.100.1', `cak_guess-${randomUUID()}`);
    assert.equal(throttle.retryAfterMs(fourth), 1000);
    time.advance(400);
    assert.equal(throttle.retryAfterMs(fourth), 600);
    // Another address is not affected.
    assert.equal(throttle.retryAfterMs(attempt('198.51.100.2', `cak_${randomUUID()}`)), 0);
    time.advance(600);
    assert.equal(throttle.retryAfterMs(fourth), 0);
  });

  test('a stale credential in a loop is throttled on its prefix before its address is', () => {
    const time = clock();
    const throttle = new CredentialThrottle({
      now: time.now,
      perSource: { burst: 20, refillMs: 1000 },
      perPrefix: { burst: 2, refillMs: 5000 },
    });
    const stale = attempt('192.0.2.9', 'cdp_stale-credential-of-a-retrying-worker');
    throttle.failed(stale);
    throttle.failed(stale);
    assert.equal(throttle.retryAfterMs(stale), 5000);
    // Another credential from the same address still gets checked.
    assert.equal(throttle.retryAfterMs(attempt('192.0.2.9', 'cdp_another-credential-entirely')), 0);
  });

  test('a credential that authenticated is never locked out by a guesser at the same address', () => {
    const time = clock();
    const throttle = new CredentialThrottle({ now: time.now, perSource: { burst: 2, refillMs: 60_000 }, trustedForMs: 10_000 });
    const good = attempt('10.0.0.1', 'cak_the-real-key-of-a-user-behind-a-nat');
    throttle.succeeded(good);
    for (let i = 0; i < 10; i++) throttle.failed(attempt('10.0.0.1', `cak_${randomUUID()}`));
    assert.ok(throttle.retryAfterMs(attempt('10.0.0.1', `cak_${randomUUID()}`)) > 0, 'guesses are throttled');
    assert.equal(throttle.retryAfterMs(good), 0, 'the known-good credential is not');
    // Guessing the good credential's prefix does not lock it out either.
    for (let i = 0; i < 10; i++) throttle.failed({ ...attempt('10.0.0.1', `x${randomUUID()}`), prefix: good.prefix });
    assert.equal(throttle.retryAfterMs(good), 0);
    // The exemption ends: after it, the credential waits like any other from that address.
    time.advance(10_001);
    assert.ok(throttle.retryAfterMs(good) > 0);
    throttle.succeeded(good);
    throttle.forget(good.digest);
    assert.ok(throttle.retryAfterMs(good) > 0, 'a forgotten (revoked) credential loses its exemption');
  });

  test('memory stays bounded under a flood of addresses', () => {
    const throttle = new CredentialThrottle({ maxEntries: 100 });
    for (let i = 0; i < 5_000; i++) throttle.failed(attempt(`10.1.${i >> 8}.${i & 255}`, `cak_${i}`));
    // The newest addresses are still tracked.
    const last = attempt('10.1.19.135', 'cak_4999');
    throttle.failed(last);
    throttle.failed(last);
    throttle.failed(last);
    throttle.failed(last);
    assert.ok(throttle.retryAfterMs(last) > 0);
  });

  test('the throttled error carries a code and the wait in whole seconds', () => {
    const error = credentialThrottled(1_200, 'API keys');
    assert.equal(error.code, 'CAIRN-1142');
    assert.equal(retryAfterSeconds(error), 2);
    assert.match(error.message, /retry after 2 s/);
  });
});
