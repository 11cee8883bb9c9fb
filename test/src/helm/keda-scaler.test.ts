// KEDA's external scaler, served by a real gateway process and fed by a real control plane: KEDA's
// calls go over gRPC exactly as KEDA makes them (externalscaler.proto), and the backlog they see is
// the control plane's count of this data plane's runs.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ManagedProcess, entryPoints } from '@cairn/dev';
import { GatewayService, GetBacklogRequestSchema, create, grpcServiceDefinition, keda, type GetBacklogResponse } from '@cairn/proto';
import { startTestStack, type TestStack } from '../harness.js';

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
interface ScalerClient extends grpc.Client {
  isActive(req: keda.ScaledObjectRef, cb: Callback<keda.IsActiveResponse>): void;
  streamIsActive(req: keda.ScaledObjectRef): grpc.ClientReadableStream<keda.IsActiveResponse>;
  getMetricSpec(req: keda.ScaledObjectRef, cb: Callback<keda.GetMetricSpecResponse>): void;
  getMetrics(req: keda.GetMetricsRequest, cb: Callback<keda.GetMetricsResponse>): void;
}
interface BacklogClient extends grpc.Client {
  getBacklog(req: unknown, metadata: grpc.Metadata, cb: Callback<GetBacklogResponse>): void;
}

const call = <T>(fn: (cb: Callback<T>) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value!))));

const ref = (scalerMetadata: Record<string, string> = {}) =>
  create(keda.ScaledObjectRefSchema, { name: 'cairn-worker', namespace: 'cairn', scalerMetadata });

/** The messages of a StreamIsActive stream, read one at a time as they arrive. */
class StreamReader {
  readonly #values: boolean[] = [];
  #waiting: ((v: boolean) => void) | undefined;
  constructor(stream: grpc.ClientReadableStream<keda.IsActiveResponse>) {
    stream.on('data', (m: keda.IsActiveResponse) => {
      if (this.#waiting) {
        const w = this.#waiting;
        this.#waiting = undefined;
        w(m.result);
      } else this.#values.push(m.result);
    });
    stream.on('error', () => undefined);
  }
  next(): Promise<boolean> {
    const v = this.#values.shift();
    return v !== undefined ? Promise.resolve(v) : new Promise((resolve) => (this.#waiting = resolve));
  }
}

describe('KEDA external scaler in the gateway', () => {
  let t: TestStack;
  let gateway: ManagedProcess;
  let scaler: ScalerClient;
  let cp: BacklogClient;

  before(async () => {
    t = await startTestStack({ name: 'keda', workers: 1 });
    const env = t.stack.workerEnv();
    gateway = new ManagedProcess(
      'gateway-scaler',
      process.execPath,
      [entryPoints.gateway],
      {
        ...process.env,
        ...env,
        CAIRN_GATEWAY_HOST: '127.0.0.1',
        CAIRN_GATEWAY_PORT: '0',
        CAIRN_GATEWAY_TOKENS: t.stack.secrets.gatewayToken,
        CAIRN_GATEWAY_SCALER_PORT: '0',
        CAIRN_GATEWAY_SCALER_POLL_MS: '100',
      },
      join(t.dir, 'logs', 'gateway-scaler.log'),
    ).start();
    const line = await gateway.waitFor(/"msg":"gateway listening"/);
    const { scalerPort } = JSON.parse(line) as { scalerPort: number };
    const Scaler = grpc.makeGenericClientConstructor(grpcServiceDefinition(keda.ExternalScaler), 'ExternalScaler');
    scaler = new Scaler(`127.0.0.1:${scalerPort}`, grpc.credentials.createInsecure()) as unknown as ScalerClient;
    const Gateway = grpc.makeGenericClientConstructor(grpcServiceDefinition(GatewayService), 'GatewayService');
    cp = new Gateway(t.stack.controlPlanes[0]!.grpcAddress, grpc.credentials.createInsecure()) as unknown as BacklogClient;
  });

  after(async () => {
    scaler?.close();
    cp?.close();
    await gateway?.stop(10_000);
    await t?.stop();
  });

  const metric = async (metadata: Record<string, string> = {}) => {
    const r = await call<keda.GetMetricsResponse>((cb) =>
      scaler.getMetrics(create(keda.GetMetricsRequestSchema, { scaledObjectRef: ref(metadata), metricName: 'cairn-backlog' }), cb),
    );
    assert.equal(r.metricValues.length, 1);
    assert.equal(r.metricValues[0]!.metricName, 'cairn-backlog');
    // The integer field, deprecated in KEDA's proto, is still sent for KEDA before 2.12.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    assert.equal(r.metricValues[0]!.metricValue, BigInt(r.metricValues[0]!.metricValueFloat));
    return r.metricValues[0]!.metricValueFloat;
  };
  const backlog = (credential: string, taskQueues: string[] = []) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${credential}`);
    return call<GetBacklogResponse>((cb) => cp.getBacklog(create(GetBacklogRequestSchema, { taskQueues }), metadata, cb));
  };

  it('reports the queued runs of this data plane as the metric, and activity as they come and go', async () => {
    const spec = await call<keda.GetMetricSpecResponse>((cb) => scaler.getMetricSpec(ref({ targetRunsPerReplica: '4' }), cb));
    assert.deepEqual(
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- still sent for KEDA before 2.12
      spec.metricSpecs.map((s) => [s.metricName, s.targetSizeFloat, s.targetSize]),
      [['cairn-backlog', 4, 4n]],
    );
    const stream = new StreamReader(scaler.streamIsActive(ref({ taskQueues: 'default' })));
    assert.equal(await stream.next(), false, 'nothing to do yet');
    assert.equal(await metric(), 0);
    assert.equal((await call<keda.IsActiveResponse>((cb) => scaler.isActive(ref(), cb))).result, false);

    // No worker: runs started now stay queued.
    assert.equal(await t.stack.workers[0]!.stop(10_000), 0);
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await t.start('five-steps', { step3Ms: 0, stepMs: 0 }));
    const firstQueuedBy = Date.now();

    assert.equal(await metric(), 3);
    assert.equal(await metric({ taskQueues: 'default' }), 3);
    assert.equal(await metric({ taskQueues: 'reports' }), 0, 'another task queue has no backlog');
    assert.equal((await call<keda.IsActiveResponse>((cb) => scaler.isActive(ref(), cb))).result, true);
    assert.equal(await stream.next(), true, 'the stream tells KEDA that work arrived');

    // The control plane counts per data plane: another data plane's credential sees none of it.
    const asked = Date.now();
    const own = await backlog(t.stack.secrets.dataPlaneCredential, ['default', 'reports']);
    assert.deepEqual(
      own.queues.map((q) => [q.taskQueue, q.queued, q.running, q.suspended]),
      [
        ['default', 3n, 0n, 0n],
        ['reports', 0n, 0n, 0n],
      ],
    );
    // The backlog's age: the runs were queued before `firstQueuedBy` and counted after `asked`.
    const [queued, empty] = own.queues.map((q) => Number(q.oldestQueuedAgeMs));
    assert.ok(queued! >= asked - firstQueuedBy - 1, `the oldest queued run's age (${queued} ms) covers the time since it was queued`);
    assert.equal(empty, 0, 'a queue with nothing queued has no backlog age');
    const registered = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/data-planes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'other' }),
    });
    assert.equal(registered.status, 201);
    const { credential } = (await registered.json()) as { credential: string };
    assert.deepEqual((await backlog(credential)).queues, []);

    // A worker arrives and finishes the runs: the backlog empties and the stream says so.
    await t.stack.startWorker();
    for (const runId of runs) assert.equal((await t.result(runId)).status, 'completed');
    assert.equal(await metric(), 0);
    assert.equal(await stream.next(), false, 'the stream tells KEDA the work is done');
  });

  it('refuses bad trigger metadata with a message naming it', async () => {
    await assert.rejects(
      call((cb) => scaler.getMetricSpec(ref({ targetRunsPerReplica: 'many' }), cb)),
      (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT && /targetRunsPerReplica/.test(err.details),
    );
    await assert.rejects(
      call((cb) => scaler.isActive(ref({ taskQueues: 'default,not a queue' }), cb)),
      (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT && /taskQueues: "not a queue"/.test(err.details),
    );
  });
});
