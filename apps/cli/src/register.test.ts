// `cairn workflows register` reads a registration from the definitions in a module: settings from
// code, schema digests of the JSON Schemas workers catalogue, and the override file's fields.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { schemaDigest } from '@cairn/common';
import { defineWorkflow } from '@cairn/sdk';
import { differingFields, loadMetadata, registrationOf } from './commands/workflows.js';
import { CliError } from './errors.js';

const input = z.object({ orderId: z.string(), amount: z.number().min(0) });
const refund = defineWorkflow(
  {
    name: 'order-refund',
    version: '3',
    taskQueue: 'payments',
    input,
    retry: { maximumAttempts: 5, initialInterval: '500ms', nonRetryableErrorTypes: ['ValidationError'] },
    timeouts: { run: '7d', step: '30s' },
    schedules: [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }],
    flowControl: { concurrency: { limit: 4 } },
  },
  (_ctx, i) => i.amount,
);

describe('registrations read from workflow definitions', () => {
  it('carry the settings from code, schema digests instead of schemas, and no error type names', () => {
    const registration = registrationOf(refund, {});
    assert.deepEqual(registration, {
      name: 'order-refund',
      version: '3',
      taskQueue: 'payments',
      inputSchemaDigest: schemaDigest(input['~standard'].jsonSchema.input({ target: 'draft-2020-12' })),
      outputSchemaDigest: null,
      retry: { maximumAttempts: 5, initialInterval: 500, backoffCoefficient: 2, maximumInterval: 50_000 },
      timeouts: { run: 7 * 86_400_000, step: 30_000 },
      schedules: [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }],
      flowControl: { concurrency: { limit: 4, perKey: false }, rateLimit: null },
    });
    assert.ok(!JSON.stringify(registration).includes('ValidationError'));
    const bare = registrationOf(
      defineWorkflow({ name: 'bare', version: '1' }, () => null),
      {},
    );
    assert.deepEqual([bare.retry, bare.timeouts, bare.schedules, 'flowControl' in bare], [null, {}, [], false]);
  });

  it('take the override file over them: retry and timeouts field by field, schedules and flow control whole', () => {
    const registration = registrationOf(refund, {
      retry: { maximumAttempts: 9 },
      timeouts: { step: '45s' },
      schedules: [{ cron: '@daily' }],
      flowControl: { rateLimit: { limit: 10, periodMs: 60_000 } },
    });
    assert.deepEqual(registration.retry, { maximumAttempts: 9, initialInterval: 500, backoffCoefficient: 2, maximumInterval: 50_000 });
    assert.deepEqual(registration.timeouts, { run: 7 * 86_400_000, step: 45_000 });
    assert.deepEqual(registration.schedules, [{ cron: '@daily', timezone: 'UTC' }]);
    assert.deepEqual(registration.flowControl, { concurrency: null, rateLimit: { limit: 10, periodMs: 60_000, perKey: false } });
    assert.throws(
      () => registrationOf(refund, { retry: { maximumAttempts: -1 } }, 'prod.yaml'),
      (err: unknown) =>
        err instanceof CliError && /prod\.yaml: Invalid retry of workflow "order-refund": maximumAttempts -1/.test(err.message),
    );
  });

  it('compare with what is registered field by field', () => {
    const registration = registrationOf(refund, {});
    const stored = {
      name: 'order-refund',
      version: '3',
      taskQueue: 'payments',
      inputSchemaDigest: registration.inputSchemaDigest,
      outputSchemaDigest: null,
      retry: { maximumInterval: 50_000, backoffCoefficient: 2, initialInterval: 500, maximumAttempts: 5 },
      timeouts: { run: 7 * 86_400_000, step: 30_000 },
      schedules: [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }],
      source: 'api' as const,
      registeredAt: '2026-12-01T09:00:00.000Z',
      registeredBy: null,
      deprecated: false,
      deprecatedAt: null,
      deprecatedBy: null,
    };
    assert.deepEqual(differingFields(stored, registration), []);
    assert.deepEqual(differingFields({ ...stored, inputSchemaDigest: null, timeouts: { run: null, step: 30_000 } }, registration), [
      'inputSchemaDigest',
      'timeouts.run',
    ]);
  });
});

describe('the override file', () => {
  it('uses the names of defineWorkflow, and says what replaced the former ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-metadata-'));
    const file = join(dir, 'workflows.yaml');
    writeFileSync(file, 'order-refund@3:\n  retry:\n    maximumAttempts: 4\n  timeouts:\n    run: 1d\n');
    assert.deepEqual(loadMetadata(file), { 'order-refund@3': { retry: { maximumAttempts: 4 }, timeouts: { run: '1d' } } });
    writeFileSync(file, 'order-refund:\n  retryPolicy:\n    maxAttempts: 4\n  inputSchema:\n    type: object\n');
    assert.throws(
      () => loadMetadata(file),
      (err: unknown) =>
        err instanceof CliError &&
        /"order-refund": retryPolicy is now retry: \{ maximumAttempts, .*; inputSchema cannot be overridden: schemas come from the workflow module/.test(
          err.message,
        ),
    );
  });
});
