import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlPlaneClock } from './clock.js';

/** Local clocks a test moves by hand: a wall clock `skewMs` off the control plane's, and a monotonic one. */
function localClocks(skewMs: number): { wall: () => number; monotonic: () => number; advance: (ms: number) => void; server: () => number } {
  let mono = 1_000;
  const serverAtStart = 1_800_000_000_000;
  return {
    monotonic: () => mono,
    wall: () => serverAtStart + skewMs + mono,
    advance: (ms) => (mono += ms),
    server: () => serverAtStart + mono,
  };
}

describe('ControlPlaneClock', () => {
  it('is the local wall clock until the first sample, then the control plane time', () => {
    const local = localClocks(-60_000);
    const clock = new ControlPlaneClock(local);
    assert.equal(clock.now(), local.wall());
    assert.equal(clock.offsetMs(), undefined);
    // Sent now, answered 40 ms later; the control plane stamped it halfway.
    const sentAt = local.monotonic();
    local.advance(20);
    const stamp = local.server();
    local.advance(20);
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    assert.equal(clock.now(), local.server());
    assert.equal(clock.offsetMs(), 60_000);
    local.advance(1_000);
    assert.equal(clock.now(), local.server());
  });

  it('takes the sample with the shortest round trip among the recent ones', () => {
    const local = localClocks(5_000);
    const clock = new ControlPlaneClock(local);
    // A slow answer: the stamp was taken 10 ms after sending, but the reply took 390 ms to come
    // back, so this sample puts the control plane 190 ms behind where it is.
    let sentAt = local.monotonic();
    local.advance(10);
    let stamp = local.server();
    local.advance(390);
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    assert.equal(clock.now(), local.server() - 190);
    // A quick, symmetric one: exact.
    local.advance(1_000);
    sentAt = local.monotonic();
    local.advance(2);
    stamp = local.server();
    local.advance(2);
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    assert.equal(clock.now(), local.server());
    // Another slow one later does not displace it.
    local.advance(1_000);
    sentAt = local.monotonic();
    stamp = local.server();
    local.advance(300);
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    assert.equal(clock.now(), local.server());
    assert.equal(clock.offsetMs(), -5_000);
  });

  it('ignores a negative or huge round trip, and a stamp that is not a number', () => {
    const local = localClocks(-30_000);
    const clock = new ControlPlaneClock(local);
    assert.equal(clock.sample(local.monotonic() + 5, local.monotonic(), local.server()), false);
    assert.equal(clock.sample(local.monotonic() - 60_000, local.monotonic(), local.server()), false);
    assert.equal(clock.sample(local.monotonic(), local.monotonic(), Number.NaN), false);
    assert.equal(clock.offsetMs(), undefined);
    assert.equal(clock.now(), local.wall());
  });

  it('never goes backwards once it follows the control plane, even when the estimate moves back', () => {
    const local = localClocks(0);
    const clock = new ControlPlaneClock(local);
    // A slow sample whose stamp was taken late in the round trip: it puts the control plane 200 ms ahead.
    let sentAt = local.monotonic();
    local.advance(400);
    let stamp = local.server();
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    const before = clock.now();
    assert.equal(before, local.server() + 200);
    // A precise sample moves the estimate back by 200 ms: now() holds rather than reverse.
    sentAt = local.monotonic();
    local.advance(1);
    stamp = local.server();
    local.advance(1);
    assert.equal(clock.sample(sentAt, local.monotonic(), stamp), true);
    const values: number[] = [];
    for (let i = 0; i < 30; i++) {
      values.push(clock.now());
      local.advance(10);
    }
    for (let i = 1; i < values.length; i++) assert.ok(values[i]! >= values[i - 1]!, `now() went back: ${values.join(', ')}`);
    assert.equal(values[0], before);
    // And once the control plane's time passes the held value, it follows it again.
    assert.equal(clock.now(), local.server());
  });

  it('drops old samples that the newest contradicts (the machine was suspended)', () => {
    const local = localClocks(0);
    let frozen = 0;
    const clock = new ControlPlaneClock({ wall: local.wall, monotonic: () => local.monotonic() - frozen });
    const sentAt = clock.monotonic();
    local.advance(2);
    assert.equal(clock.sample(sentAt, clock.monotonic(), local.server() - 1), true);
    assert.equal(clock.now(), local.server());
    // The monotonic clock stands still for 30 s while the control plane's time goes on.
    frozen += 30_000;
    local.advance(30_000);
    // A slower sample than the first, but it disagrees with it by far more than both round trips.
    const later = clock.monotonic();
    local.advance(50);
    assert.equal(clock.sample(later, clock.monotonic(), local.server() - 25), true);
    assert.equal(clock.now(), local.server());
  });
});
