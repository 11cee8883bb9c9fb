import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CairnError } from '@cairn/common/core';
import {
  ApprovalTimeoutError,
  CancelledError,
  EvalFailedError,
  NonDeterminismError,
  SignalTimeoutError,
  StepFailedError,
  StepTimeoutError,
  TerminalError,
  defineWorkflow,
} from './index.js';
import { resolveRetryPolicy, retryDelay, toApprovalResult, toMilliseconds } from './internal.js';

describe('defineWorkflow', () => {
  it('returns a frozen definition with the default task queue', async () => {
    const wf = defineWorkflow({ name: 'greet', version: '1.0.0' }, (_ctx, input: { name: string }) => `hi ${input.name}`);
    assert.equal(wf.name, 'greet');
    assert.equal(wf.version, '1.0.0');
    assert.equal(wf.taskQueue, 'default');
    assert.ok(Object.isFrozen(wf));
    // A synchronous function still runs as a promise.
    assert.equal(await wf.run({} as never, { name: 'ada' }), 'hi ada');
  });

  it('rejects bad names, versions and queues at definition time with a clear error', () => {
    assert.throws(
      () => defineWorkflow({ name: 'send email to bob@example.com', version: '1' }, () => 1),
      (err: unknown) => err instanceof CairnError && err.code === 'CAIRN-1107' && /Invalid workflow name/.test(err.message),
    );
    assert.throws(() => defineWorkflow({ name: 'ok', version: ' 1' }, () => 1), /Invalid version of workflow "ok"/);
    assert.throws(() => defineWorkflow({ name: 'ok', version: '1', taskQueue: '' }, () => 1), /Invalid task queue of workflow "ok"/);
    assert.throws(() => defineWorkflow({ name: 'ok', version: '1' }, undefined as never), /needs a function/);
  });
});

describe('durations', () => {
  it('reads numbers and ms strings', () => {
    assert.equal(toMilliseconds(250), 250);
    assert.equal(toMilliseconds('1.5s'), 1500);
    assert.equal(toMilliseconds('2d'), 172_800_000);
    assert.equal(toMilliseconds('200ms'), 200);
  });

  it('rejects unreadable and negative values naming the value', () => {
    assert.throws(() => toMilliseconds('soon', 'sleep duration'), /Invalid sleep duration "soon"/);
    assert.throws(() => toMilliseconds(-1), /Invalid duration -1/);
    assert.throws(() => toMilliseconds(Number.NaN), /Invalid duration/);
  });
});

describe('retry policy', () => {
  it('fills in the defaults', () => {
    assert.deepEqual(resolveRetryPolicy(), {
      initialIntervalMs: 1000,
      backoffCoefficient: 2,
      maximumIntervalMs: 100_000,
      maximumAttempts: 3,
      nonRetryableErrorTypes: [],
    });
  });

  it('backs off exponentially up to the maximum interval', () => {
    const p = resolveRetryPolicy({ initialInterval: '100ms', backoffCoefficient: 3, maximumInterval: 1000 });
    assert.deepEqual(
      [1, 2, 3, 4].map((a) => retryDelay(p, a)),
      [100, 300, 900, 1000],
    );
  });

  it('rejects inconsistent policies', () => {
    assert.throws(() => resolveRetryPolicy({ maximumAttempts: -1 }), /maximumAttempts/);
    assert.throws(() => resolveRetryPolicy({ backoffCoefficient: 0.5 }), /backoffCoefficient/);
    assert.throws(() => resolveRetryPolicy({ initialInterval: 1000, maximumInterval: 10 }), /shorter than initialInterval/);
  });
});

describe('errors', () => {
  it('carry their codes and say what happened', () => {
    const terminal = new TerminalError('card declined');
    assert.equal(terminal.code, 'CAIRN-2004');
    assert.equal(terminal.name, 'TerminalError');

    const failed = new StepFailedError({ stepName: 'charge-card', attempts: 3, cause: new TypeError('socket hang up') });
    assert.equal(failed.code, 'CAIRN-2002');
    assert.equal(failed.message, '[CAIRN-2002] Step "charge-card" failed after 3 attempts: TypeError: socket hang up');
    assert.equal(failed.causeName, 'TypeError');
    assert.equal(failed.causeMessage, 'socket hang up');
    assert.ok(failed.cause instanceof TypeError);

    const nonRetryable = new StepFailedError({ stepName: 'charge-card', attempts: 1, cause: terminal, nonRetryable: true });
    assert.equal(
      nonRetryable.message,
      '[CAIRN-2002] Step "charge-card" failed after 1 attempt (non-retryable error): TerminalError: card declined',
    );
    assert.equal(nonRetryable.causeCode, 'CAIRN-2004');

    const nd = new NonDeterminismError({
      position: 2,
      expected: { kind: 'step', name: 'charge-card' },
      actual: { kind: 'step', name: 'refund' },
    });
    assert.equal(
      nd.message,
      '[CAIRN-2001] Non-determinism at position 2: the journal has step "charge-card", the workflow now calls step "refund". ' +
        'Deploy code compatible with running runs, or start a new version.',
    );
    const keyed = new NonDeterminismError({
      position: 0,
      expected: { kind: 'step', name: 'fetch', keyDigest: 'a'.repeat(64) },
      actual: { kind: 'signal', name: 'approval' },
    });
    assert.match(keyed.message, /the journal has step "fetch" with key #aaaaaaaaaaaa, the workflow now calls signal wait "approval"/);

    assert.equal(new StepTimeoutError({ stepName: 'llm', attempt: 2, timeoutMs: 30000 }).code, 'CAIRN-2003');
    assert.equal(
      new SignalTimeoutError({ signalName: 'approval', timeoutMs: 10 }).message,
      '[CAIRN-2005] No signal "approval" arrived after 10 ms.',
    );
    assert.equal(new CancelledError().code, 'CAIRN-2006');
    for (const e of [terminal, failed, nd, new CancelledError()]) assert.ok(e instanceof CairnError);
  });

  it('name approvals and eval gates that failed', () => {
    const timeout = new ApprovalTimeoutError({ approvalName: 'refund', timeoutMs: 5000 });
    assert.equal(timeout.code, 'CAIRN-2005');
    assert.equal(timeout.message, '[CAIRN-2005] No answer to approval "refund" arrived within 5000 ms.');
    const failed = new EvalFailedError({ callName: 'headline', rounds: 3, reasons: ['too long', 'mentions a competitor'] });
    assert.equal(failed.code, 'CAIRN-2002');
    assert.equal(
      failed.message,
      '[CAIRN-2002] The output of "headline" failed its eval checks after 3 runs: too long; mentions a competitor',
    );
    assert.equal(failed.rejectedBy, undefined);
    const rejected = new EvalFailedError({ callName: 'headline', rounds: 1, reasons: ['too long'], rejected: true, rejectedBy: 'ed' });
    assert.match(rejected.message, /after 1 run, and "ed" rejected it: too long/);
    assert.equal(rejected.rejectedBy, 'ed');
  });
});

describe('approval answers', () => {
  it('approve only on approved: true, and keep by, comment and data', () => {
    assert.deepEqual(toApprovalResult({ approved: true, by: 'maria', comment: 'ok', data: { n: 1 }, extra: 1 }), {
      approved: true,
      by: 'maria',
      comment: 'ok',
      data: { n: 1 },
    });
    assert.deepEqual(toApprovalResult({ approved: 'yes', by: 7 }), { approved: false });
    assert.deepEqual(toApprovalResult(null), { approved: false });
    assert.deepEqual(toApprovalResult([true]), { approved: false });
    assert.deepEqual(toApprovalResult({ approved: false, data: null }), { approved: false, data: null });
  });
});

describe('SDK_VERSION', () => {
  it('is the version of the published package (scripts/sync-versions.mjs keeps them equal)', async () => {
    const { readFileSync } = await import('node:fs');
    const { SDK_VERSION } = await import('./index.js');
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(SDK_VERSION, manifest.version);
  });
});

describe('the public surface', () => {
  it('keeps the helpers only the worker and the CLI use in @cairn/sdk/internal', async () => {
    const sdk = (await import('./index.js')) as Record<string, unknown>;
    const internal = (await import('./internal.js')) as Record<string, unknown>;
    const helpers = [
      'resolveRetryPolicy',
      'retryDelay',
      'mergeRetryPolicies',
      'resolveModelRetryPolicy',
      'toApprovalResult',
      'toMilliseconds',
    ];
    assert.deepEqual(
      helpers.filter((name) => name in sdk),
      [],
    );
    assert.deepEqual(
      helpers.filter((name) => typeof internal[name] !== 'function'),
      [],
    );
    // What workflow code needs is public.
    for (const name of ['defineWorkflow', 'defineSignal', 'TerminalError', 'CairnError', 'ErrorCodes', 'DEFAULT_RETRY_POLICY'])
      assert.ok(name in sdk, name);
  });
});
