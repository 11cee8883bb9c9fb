// Workflow settings in code: schemas (with their types), signals, retry, timeouts, schedules and
// flow control on defineWorkflow, and defineSignal. The `@ts-expect-error` lines are checked by
// tsc when the package builds: each must be a type error, or the build fails.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { CairnError } from '@cairn/common/core';
import {
  DEFAULT_RETRY_POLICY,
  SchemaValidationError,
  SignalValidationError,
  defineSignal,
  defineWorkflow,
  type WorkflowContext,
  type WorkflowInput,
  type WorkflowOutput,
} from './index.js';
import { mergeRetryPolicies, resolveRetryPolicy, validateWithSchema } from './internal.js';

const refundInput = z.object({ orderId: z.string(), amount: z.number().min(0), currency: z.string().default('EUR') });
const refundOutput = z.object({ refunded: z.boolean() });
const approval = defineSignal('approval', z.object({ approved: z.boolean(), by: z.string().optional() }));
const nudge = defineSignal<{ note?: string }>('nudge');

const refund = defineWorkflow(
  {
    name: 'order-refund',
    version: '1',
    taskQueue: 'payments',
    input: refundInput,
    output: refundOutput,
    signals: [approval, nudge],
    retry: { maximumAttempts: 5, initialInterval: '200ms' },
    timeouts: { run: '7d', step: '30s' },
    schedules: [{ cron: '0  9 * * MON-FRI', timezone: 'Europe/Paris' }, { cron: '@daily' }],
    flowControl: { concurrency: { limit: 3 }, rateLimit: { limit: 10, periodMs: 60_000, perKey: true } },
  },
  async (ctx, input) => {
    // The parsed type: the default makes `currency` a string here.
    const _currency: string = input.currency;
    const _amount: number = input.amount;
    const answer = await ctx.waitForSignal(approval);
    const approved: boolean = answer.approved;
    const _note: string | undefined = (await ctx.waitForSignal(nudge)).note;
    // @ts-expect-error the input has no such field
    const _customer = input.customer;
    return { refunded: approved };
  },
);

// Types: what a caller passes is the schema's input type (currency optional); the output is the schema's output.
const _callerInput: WorkflowInput<typeof refund> = { orderId: 'o-1', amount: 5 };
// @ts-expect-error amount must be a number
const _badInput: WorkflowInput<typeof refund> = { orderId: 'o-1', amount: '5' };
const _output: WorkflowOutput<typeof refund> = { refunded: true };

async function _typedChildCalls(ctx: WorkflowContext): Promise<void> {
  const result = await ctx.child(refund, { orderId: 'o-2', amount: 1 });
  const _refunded: boolean = result.refunded;
  // @ts-expect-error the child's input is checked against the schema's type
  await ctx.child(refund, { orderId: 'o-2', amount: 'one' });
}

// @ts-expect-error the function returns something the output schema does not accept
defineWorkflow({ name: 'bad-output', version: '1', output: refundOutput }, () => ({ refunded: 'yes' }));

// The annotated form keeps working without any schema.
const annotated = defineWorkflow({ name: 'greet', version: '1' }, (_ctx, input: { name: string }) => ({ text: `hi ${input.name}` }));
const _greetInput: WorkflowInput<typeof annotated> = { name: 'ada' };
const _greetOutput: WorkflowOutput<typeof annotated> = { text: 'hi' };

describe('defineWorkflow settings', () => {
  it('exposes the settings, frozen, with durations in milliseconds and defaults filled in', () => {
    assert.ok(Object.isFrozen(refund));
    assert.equal(refund.taskQueue, 'payments');
    assert.deepEqual(refund.retry, { maximumAttempts: 5, initialInterval: '200ms' });
    assert.ok(Object.isFrozen(refund.retry));
    assert.deepEqual(refund.timeouts, { run: 7 * 86_400_000, step: 30_000 });
    assert.deepEqual(refund.schedules, [
      { cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' },
      { cron: '@daily', timezone: 'UTC' },
    ]);
    assert.deepEqual(refund.flowControl, {
      concurrency: { limit: 3, perKey: false },
      rateLimit: { limit: 10, periodMs: 60_000, perKey: true },
    });
    assert.deepEqual(
      refund.signals.map((s) => [s.name, s.body !== undefined]),
      [
        ['approval', true],
        ['nudge', false],
      ],
    );
    assert.equal(annotated.input, undefined);
    assert.deepEqual(annotated.timeouts, { run: undefined, step: undefined });
    assert.deepEqual(annotated.signals, []);
  });

  it('derives the JSON Schemas: what callers send for the input, what the schema produces for the output', () => {
    assert.deepEqual(refund.input?.jsonSchema, {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: {
        orderId: { type: 'string' },
        amount: { type: 'number', minimum: 0 },
        currency: { default: 'EUR', type: 'string' },
      },
      required: ['orderId', 'amount'],
    });
    assert.deepEqual(refund.output?.jsonSchema?.['required'], ['refunded']);
    assert.ok(Object.isFrozen(refund.input?.jsonSchema));
    assert.equal(refund.input?.jsonSchemaUnavailable, undefined);
  });

  it('keeps a schema JSON Schema cannot express, or one without Standard JSON Schema, for the worker alone', async () => {
    const dated = defineWorkflow({ name: 'dated', version: '1', input: z.object({ at: z.date() }) }, (_ctx, input) => input.at.getTime());
    assert.equal(dated.input?.jsonSchema, undefined);
    assert.match(dated.input?.jsonSchemaUnavailable ?? '', /cannot be expressed in JSON Schema/);
    // A hand-written Standard Schema with no jsonSchema converter.
    const positive: StandardSchemaV1<number, number> = {
      '~standard': {
        version: 1,
        vendor: 'hand-written',
        validate: (value) => (typeof value === 'number' && value > 0 ? { value } : { issues: [{ message: 'must be a positive number' }] }),
      },
    };
    const counted = defineWorkflow({ name: 'counted', version: '1', input: positive }, (_ctx, n) => n * 2);
    assert.equal(counted.input?.jsonSchema, undefined);
    assert.match(counted.input?.jsonSchemaUnavailable ?? '', /hand-written schema does not implement Standard JSON Schema/);
    assert.deepEqual(await validateWithSchema(positive, -1), { issues: [{ path: '', message: 'must be a positive number' }] });
  });

  it('refuses bad settings at definition time, naming the workflow and the setting', () => {
    const base = { name: 'checked', version: '1' };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ input: { type: 'object' } }, /input schema of workflow "checked" must be a Standard Schema/],
      [{ retry: { maximumAttempts: -2 } }, /Invalid retry of workflow "checked": maximumAttempts -2/],
      [{ retry: { initialInterval: 'soon' } }, /initialInterval "soon"/],
      [{ timeouts: { run: '10ms' } }, /timeouts\.run of workflow "checked": 10 ms is not from 1000 ms/],
      [
        { timeouts: { runTimeoutMs: 5000 } },
        /Unknown field runTimeoutMs in the timeouts of workflow "checked": the fields are run and step/,
      ],
      [{ schedules: [{ cron: 'every day at nine' }] }, /schedules\[0\]\.cron of workflow "checked" is not a cron expression/],
      [{ schedules: [{ cron: '0 9 * * *', timezone: 'Paris, France' }] }, /schedules\[0\]\.timezone .* IANA time zone/],
      [{ flowControl: { concurrency: { limit: 0 } } }, /flowControl\.concurrency of workflow "checked"/],
      [{ flowControl: { rateLimit: { limit: 5, periodMs: 10 } } }, /flowControl\.rateLimit of workflow "checked"/],
      [{ signals: ['approval'] }, /signals of workflow "checked" must be a list of defineSignal/],
      [{ signals: [approval, approval] }, /Signal "approval" is listed twice/],
      [{ retryPolicy: { maxAttempts: 3 } }, /Unknown option retryPolicy of workflow "checked"/],
    ];
    for (const [extra, pattern] of cases) {
      assert.throws(
        () => defineWorkflow({ ...base, ...extra } as never, () => 1),
        (err: unknown) => err instanceof CairnError && pattern.test(err.message),
        JSON.stringify(extra),
      );
    }
  });
});

describe('defineSignal', () => {
  it('names the signal, checks the name and keeps the schema', async () => {
    assert.equal(approval.name, 'approval');
    assert.ok(Object.isFrozen(approval));
    assert.deepEqual(approval.body?.jsonSchema?.['required'], ['approved']);
    assert.equal(nudge.body, undefined);
    assert.throws(() => defineSignal('an approval!'), /Invalid signal name/);
    assert.throws(() => defineSignal('ok', {} as never), /schema of signal "ok" must be a Standard Schema/);
    assert.deepEqual(await validateWithSchema(approval.body?.schema, { approved: 'yes' }), {
      issues: [{ path: '/approved', message: 'Invalid input: expected boolean, received string' }],
    });
  });
});

describe('schema errors', () => {
  it('carry CAIRN-1116 and the issues with their paths', () => {
    const err = new SignalValidationError({ signalName: 'approval', issues: [{ path: '/approved', message: 'expected boolean' }] });
    assert.ok(err instanceof SchemaValidationError);
    assert.equal(err.code, 'CAIRN-1116');
    assert.equal(err.message, '[CAIRN-1116] the body of signal "approval" does not match its schema: /approved expected boolean');
    assert.deepEqual([err.target, err.signalName, err.issues.length], ['signal', 'approval', 1]);
  });
});

describe('retry policies', () => {
  it('merge field by field, later policies winning', () => {
    assert.deepEqual(mergeRetryPolicies({ initialInterval: '200ms', maximumAttempts: 5 }, undefined, { maximumAttempts: 2 }), {
      initialInterval: '200ms',
      maximumAttempts: 2,
    });
  });

  it('share their defaults with the registry', () => {
    assert.deepEqual(DEFAULT_RETRY_POLICY, {
      initialIntervalMs: 1000,
      backoffCoefficient: 2,
      maximumIntervalFactor: 100,
      maximumAttempts: 3,
    });
    assert.equal(resolveRetryPolicy({ initialInterval: '2s' }).maximumIntervalMs, 200_000);
  });
});
