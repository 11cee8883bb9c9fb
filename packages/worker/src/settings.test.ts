// Workflow settings from code in the worker: which retry policy and step timeout a step gets (its
// own > registered > the workflow's > the SDK's), the input checked at run start, the output before
// it is stored, typed signals checked when consumed, the schema catalogue written at start and
// the settings a Hello announces.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { CRON_MAX_LENGTH, CRON_PATTERN, TIME_ZONE_MAX_LENGTH, TIME_ZONE_PATTERN, createLogger, newId, schemaDigest } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import {
  ConnectResponseSchema,
  DeclaredScheduleSchema,
  ErrorCode,
  HelloSchema,
  WelcomeSchema,
  WorkerService,
  create,
  fieldRule,
  grpcServiceDefinition,
  toBinary,
  type ConnectRequest,
  type ConnectResponse,
  type Hello,
} from '@cairn/proto';
import {
  SignalValidationError,
  StepFailedError,
  defineSignal,
  defineWorkflow,
  type StandardSchemaV1,
  type WorkflowDefinition,
} from '@cairn/sdk';
import type { Engine, StepDefaults } from './engine.js';
import { SignalHub } from './signals.js';
import { FakeControlPlane, expectKind, logger } from './testing/engine-harness.js';
import { Worker } from './worker.js';

/** A control plane that welcomes every Hello and keeps what it was told. */
class WelcomingControlPlane {
  readonly server = new grpc.Server();
  readonly hellos: Hello[] = [];
  address = '';

  async start(): Promise<void> {
    this.server.addService(grpcServiceDefinition(WorkerService), {
      connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
        call.on('data', (request: ConnectRequest) => {
          if (request.message.case !== 'hello') return;
          this.hellos.push(request.message.value);
          call.write(
            create(ConnectResponseSchema, {
              message: {
                case: 'welcome',
                value: create(WelcomeSchema, { sessionId: newId(), leaseTtlMs: 10_000, heartbeatIntervalMs: 1000 }),
              },
            }),
          );
        });
        call.on('error', () => undefined);
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }
}

const failing = (counter: { n: number }) => (): never => {
  counter.n++;
  throw new Error('still failing');
};

async function attemptsOf(promise: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    if (err instanceof StepFailedError) return err.causeName === 'StepTimeoutError' ? -err.attempts : err.attempts;
    throw err;
  }
}

for (const kind of testPostgresKinds()) {
  describe(`workflow settings in the worker on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let store: PayloadStore;
    let signals: SignalHub;
    let cp: FakeControlPlane;
    // Every worker of a data plane has the same HMAC key (the payload store checks it at start).
    const workerHasher = new Hasher(randomBytes(32));

    before(async () => {
      server = await testPostgres(kind);
      const url = await server.createDatabase(uniqueDatabaseName('settings'));
      store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]) });
      await store.migrate();
      signals = new SignalHub(store, logger);
      cp = new FakeControlPlane(store, new Hasher(randomBytes(32)), signals);
    });
    after(async () => {
      await signals.close();
      await store.close();
      await server.stop();
    });

    const run = async (engine: Engine, def: WorkflowDefinition, input: unknown, defaults?: StepDefaults) => {
      const runId = await cp.start(def, input);
      const outcome = await engine.start({ runId, epoch: 1, workflowName: def.name, workflowVersion: def.version, defaults }).done;
      return { runId, outcome };
    };

    it("a step's own options win, then the registered defaults, then the workflow's settings, then the SDK's", async () => {
      const counts = { plain: { n: 0 }, own: { n: 0 }, field: { n: 0 } };
      const wf = defineWorkflow(
        { name: 'precedence', version: '1', retry: { maximumAttempts: 4, initialInterval: 5 }, timeouts: { step: 100 } },
        async (ctx) => {
          for (const c of Object.values(counts)) c.n = 0;
          return {
            // No options: the registered policy if there is one, else the workflow's.
            plain: await attemptsOf(ctx.step('plain', failing(counts.plain))),
            // Its own maximumAttempts wins; the other fields come from the layers below.
            own: await attemptsOf(ctx.step('own', failing(counts.own), { retry: { maximumAttempts: 2 } })),
            // A 300 ms step: times out under the workflow's 100 ms step timeout, not under a registered 5 s one.
            slow: await attemptsOf(
              ctx.step(
                'slow',
                ({ signal }) => new Promise((resolve) => setTimeout(resolve, 300, 'done')).then((v) => (signal.aborted ? null : v)),
                {
                  retry: { maximumAttempts: 1 },
                },
              ),
            ),
            // Its own timeout wins over both.
            ownTimeout: await attemptsOf(
              ctx.step('own-timeout', () => new Promise((resolve) => setTimeout(resolve, 300, 'done')), {
                timeout: '10s',
                retry: { maximumAttempts: 1 },
              }),
            ),
          };
        },
      );
      const engine = cp.engine([wf], 1000);
      const fromCode = await run(engine, wf, null);
      expectKind(fromCode.outcome, 'completed');
      assert.deepEqual((await store.getRun(fromCode.runId))?.output, { plain: 4, own: 2, slow: -1, ownTimeout: 'ok' });

      const registered = await run(engine, wf, null, { retry: { maximumAttempts: 3, initialInterval: 5 }, stepTimeoutMs: 5000 });
      expectKind(registered.outcome, 'completed');
      assert.deepEqual((await store.getRun(registered.runId))?.output, { plain: 3, own: 2, slow: 'ok', ownTimeout: 'ok' });

      // Neither: the SDK's defaults (3 attempts; the short interval keeps the test quick).
      const sdk = defineWorkflow({ name: 'sdk-defaults', version: '1' }, async (ctx) =>
        attemptsOf(ctx.step('plain', failing({ n: 0 }), { retry: { initialInterval: 5 } })),
      );
      const bare = await run(cp.engine([sdk], 1000), sdk, null);
      assert.equal((await store.getRun(bare.runId))?.output, 3);
    });

    it('checks the input at run start: a bad input fails the run for good with CAIRN-1116 and the paths; a good one arrives parsed', async () => {
      let received: unknown;
      const wf = defineWorkflow(
        {
          name: 'typed-input',
          version: '1',
          input: z.object({ orderId: z.string(), amount: z.number().min(0), currency: z.string().default('EUR') }),
        },
        async (ctx, input) => {
          received = input;
          return ctx.step('echo', () => `${input.orderId}:${input.amount} ${input.currency}`);
        },
      );
      const engine = cp.engine([wf]);
      const bad = await run(engine, wf, { orderId: 7, amount: -1 });
      const failed = expectKind(bad.outcome, 'failed');
      assert.equal(failed.errorCode, ErrorCode.INVALID_INPUT);
      assert.equal(received, undefined, 'the workflow function never ran');
      const stored = (await store.getError(failed.errorRef)) as unknown as { code: string; message: string; issues: unknown };
      assert.equal(stored.code, 'CAIRN-1116');
      assert.match(stored.message, /input does not match the input schema of typed-input@1: \/orderId .*; \/amount .*>=0/);
      assert.deepEqual(
        (stored.issues as Array<{ path: string }>).map((i) => i.path),
        ['/orderId', '/amount'],
      );
      assert.equal(cp.reportsFor(bad.runId).length, 0, 'no step ran');

      const good = await run(engine, wf, { orderId: 'o-1', amount: 5 });
      expectKind(good.outcome, 'completed');
      assert.deepEqual(received, { orderId: 'o-1', amount: 5, currency: 'EUR' });
      assert.equal((await store.getRun(good.runId))?.output, 'o-1:5 EUR');
    });

    it('checks inputs with a schema that has no JSON Schema, and outputs before storing them', async () => {
      const even: StandardSchemaV1<number, number> = {
        '~standard': {
          version: 1,
          vendor: 'hand-written',
          validate: (v) => (typeof v === 'number' && v % 2 === 0 ? { value: v } : { issues: [{ message: 'must be an even number' }] }),
        },
      };
      const wf = defineWorkflow({ name: 'even', version: '1', input: even, output: z.object({ half: z.number().int() }) }, (_ctx, n) => ({
        half: n / 2,
      }));
      const engine = cp.engine([wf]);
      const odd = expectKind((await run(engine, wf, 3)).outcome, 'failed');
      assert.equal(odd.errorCode, ErrorCode.INVALID_INPUT);
      assert.match((await store.getError(odd.errorRef))!.message, /\(the value\) must be an even number/);
      const ok = await run(engine, wf, 8);
      assert.deepEqual((await store.getRun(ok.runId))?.output, { half: 4 });
      // 6 / 2 is fine; 2 / 2 = 1 too. An output the schema refuses: half of 4.4 is not a whole number.
      const wfBadOutput = defineWorkflow(
        { name: 'bad-output', version: '1', output: z.object({ half: z.number().int() }) },
        (_ctx, n: number) => ({
          half: n / 2,
        }),
      );
      const badOut = expectKind((await run(cp.engine([wfBadOutput]), wfBadOutput, 4.4)).outcome, 'failed');
      assert.equal(badOut.errorCode, ErrorCode.APPLICATION);
      assert.match(
        (await store.getError(badOut.errorRef))!.message,
        /\[CAIRN-1116\] the result of bad-output@1 does not match its output schema: \/half/,
      );
    });

    it('checks typed signal bodies when they are consumed: a bad one throws SignalValidationError the workflow catches, also on replay', async () => {
      const approval = defineSignal('approval', z.object({ approved: z.boolean(), by: z.string().default('someone') }));
      const wf = defineWorkflow({ name: 'typed-signal', version: '1', signals: [approval] }, async (ctx) => {
        const refused: string[] = [];
        let answer: { approved: boolean; by: string } | undefined;
        while (!answer) {
          try {
            answer = await ctx.waitForSignal(approval, { timeout: '1m' });
          } catch (err) {
            if (!(err instanceof SignalValidationError)) throw err;
            refused.push(`${err.code} ${err.signalName} ${err.issues.map((i) => i.path).join(',')}`);
          }
        }
        // A long sleep suspends the run: the next dispatch replays both signal waits.
        await ctx.sleep(1500);
        return { refused, answer };
      });
      const engine = cp.engine([wf], 200);
      const runId = await cp.start(wf, null);
      await store.addSignal(runId, 'approval', { approved: 'yes' });
      await store.addSignal(runId, 'approval', { approved: true });
      const { outcome, outcomes } = await cp.drive(engine, runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(outcomes.length, 2, 'suspended once, then replayed');
      assert.deepEqual((await store.getRun(runId))?.output, {
        refused: ['CAIRN-1116 approval /approved'],
        answer: { approved: true, by: 'someone' },
      });
    });

    it('catalogues the schemas before dialling, and announces settings with digests and numbers only', async () => {
      const control = new WelcomingControlPlane();
      await control.start();
      const input = z.object({ amount: z.number().min(0) });
      const wf = defineWorkflow(
        {
          name: 'announced',
          version: '3',
          taskQueue: 'payments',
          input,
          signals: [defineSignal('approval', z.object({ approved: z.boolean() })), defineSignal('poke')],
          retry: { maximumAttempts: 5, initialInterval: '250ms', nonRetryableErrorTypes: ['SecretValidationError'] },
          timeouts: { run: '1h', step: '30s' },
          schedules: [{ cron: '0 9 * * MON-FRI', timezone: 'Europe/Paris' }],
          flowControl: { concurrency: { limit: 2, perKey: true } },
        },
        (_ctx, i) => i.amount,
      );
      const worker = new Worker({
        controlPlaneAddress: control.address,
        credential: 'token',
        dataPlaneId: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
        store,
        hasher: workerHasher,
        workflows: [wf],
        logger: createLogger('worker-test', 'silent'),
      });
      try {
        await worker.start();
        const catalogue = await store.catalogue('announced');
        const inputJson = input['~standard'].jsonSchema.input({ target: 'draft-2020-12' });
        assert.deepEqual(
          catalogue[0]!.schemas.map((s) => [s.kind, s.signalName ?? null, s.digest]),
          [
            ['input', null, schemaDigest(inputJson)],
            ['signal', 'approval', schemaDigest(wf.signals[0]!.body!.jsonSchema)],
          ],
        );
        const hello = control.hellos[0]!;
        const settings = hello.workflows[0]!.settings!;
        assert.deepEqual(
          {
            taskQueue: hello.workflows[0]!.taskQueue,
            retry: { ...settings.retry, $typeName: undefined },
            runTimeoutMs: settings.runTimeoutMs,
            stepTimeoutMs: settings.stepTimeoutMs,
            inputSchemaDigest: settings.inputSchemaDigest,
            outputSchemaDigest: settings.outputSchemaDigest,
            schedules: settings.schedules.map((s) => [s.cron, s.timezone]),
            concurrency: [settings.flowControl?.concurrency?.limit, settings.flowControl?.concurrency?.perKey],
            rateLimit: settings.flowControl?.rateLimit,
          },
          {
            taskQueue: 'payments',
            retry: { $typeName: undefined, maximumAttempts: 5, initialIntervalMs: 250n, backoffCoefficient: 2, maximumIntervalMs: 25_000n },
            runTimeoutMs: 3_600_000n,
            stepTimeoutMs: 30_000n,
            inputSchemaDigest: schemaDigest(inputJson),
            outputSchemaDigest: '',
            schedules: [['0 9 * * MON-FRI', 'Europe/Paris']],
            concurrency: [2, true],
            rateLimit: undefined,
          },
        );
        // Error type names and schema text stay in the data plane.
        const bytes = Buffer.from(toBinary(HelloSchema, hello)).toString('latin1');
        assert.ok(!bytes.includes('SecretValidationError'));
        assert.ok(!bytes.includes('minimum') && !bytes.includes('amount'));
      } finally {
        await worker.shutdown();
        control.server.forceShutdown();
      }
    });

    it('refuses to start, before dialling, when a version’s schemas differ from the catalogued ones', async () => {
      const control = new WelcomingControlPlane();
      await control.start();
      const v1 = (schema: z.ZodType) => defineWorkflow({ name: 'immutable', version: '1', input: schema }, () => null);
      const make = (def: WorkflowDefinition, replaceChangedSchemas = false) =>
        new Worker({
          controlPlaneAddress: control.address,
          credential: 'token',
          dataPlaneId: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
          store,
          hasher: workerHasher,
          workflows: [def],
          logger: createLogger('worker-test', 'silent'),
          replaceChangedSchemas,
        });
      const first = make(v1(z.object({ n: z.number() })));
      await first.start();
      await first.shutdown();
      const changed = make(v1(z.object({ n: z.string() })));
      await assert.rejects(changed.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'CAIRN-1117');
        assert.match(err.message, /workflow immutable@1: the input schema changed/);
        assert.match(err.message, /give the changed workflow a new version/);
        return true;
      });
      await changed.shutdown();
      assert.equal(control.hellos.length, 1, 'the refused worker never said Hello');
      // In development the changed schemas replace the catalogued ones.
      const dev = make(v1(z.object({ n: z.string() })), true);
      await dev.start();
      await dev.shutdown();
      const stored = (await store.catalogue('immutable'))[0]!.schemas[0]!.schema as { properties: { n: { type: string } } };
      assert.equal(stored.properties.n.type, 'string');
      control.server.forceShutdown();
    });
  });
}

describe('announced settings on the wire', () => {
  it('bound declared cron expressions and time zones with the same patterns the SDK checks', () => {
    const rule = (field: string) => fieldRule(DeclaredScheduleSchema.fields.find((f) => f.name === field)!);
    assert.equal(rule('cron')?.pattern?.source, CRON_PATTERN.source);
    assert.equal(rule('cron')?.maxLength, CRON_MAX_LENGTH);
    assert.equal(rule('timezone')?.pattern?.source, TIME_ZONE_PATTERN.source);
    assert.equal(rule('timezone')?.maxLength, TIME_ZONE_MAX_LENGTH);
  });
});
