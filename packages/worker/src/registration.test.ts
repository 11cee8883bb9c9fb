// The worker's side of the workflow registry: a control plane that refuses the Hello because a
// workflow version is not registered stops the worker with a clear error instead of redialling.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import {
  ConnectResponseSchema,
  RejectionReason,
  RejectionSchema,
  WorkerService,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
} from '@cairn/proto';
import { defineWorkflow } from '@cairn/sdk';
import { Worker } from './worker.js';

/** A control plane that answers every Hello the way it answers an unregistered version. */
class RefusingControlPlane {
  readonly server = new grpc.Server();
  connections = 0;
  address = '';

  async start(): Promise<void> {
    this.server.addService(grpcServiceDefinition(WorkerService), {
      connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
        this.connections += 1;
        call.on('data', (request: ConnectRequest) => {
          if (request.message.case !== 'hello') return;
          const hello = request.message.value;
          const first = hello.workflows[0]!;
          call.write(
            create(ConnectResponseSchema, {
              message: {
                case: 'rejection',
                value: create(RejectionSchema, {
                  sequence: request.sequence,
                  reason: RejectionReason.WORKFLOW_NOT_REGISTERED,
                  workflowName: first.name,
                  workflowVersion: first.version,
                }),
              },
            }),
          );
          call.emit('error', {
            code: grpc.status.FAILED_PRECONDITION,
            details: `workflow ${first.name}@${first.version} is not registered in this data plane's project: register each version first`,
          });
        });
        call.on('error', () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }
}

describe('Worker against a control plane that does not know its workflow versions', () => {
  const cp = new RefusingControlPlane();
  let server: PostgresServer;
  let store: PayloadStore;
  before(async () => {
    await cp.start();
    server = await testPostgres(testPostgresKinds()[0]!);
    store = PayloadStore.connect({
      connectionString: await server.createDatabase(uniqueDatabaseName('registration')),
      keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]),
    });
    await store.migrate();
  });
  after(async () => {
    cp.server.forceShutdown();
    await store.close();
    await server.stop();
  });

  it('start() rejects naming the version and how to register it, and the worker does not redial', async () => {
    const worker = new Worker({
      controlPlaneAddress: cp.address,
      credential: 'token',
      dataPlaneId: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
      store,
      hasher: new Hasher(randomBytes(32)),
      workflows: [defineWorkflow({ name: 'order-refund', version: '7' }, () => null)],
      logger: createLogger('worker-test', 'silent'),
    });
    await assert.rejects(worker.start(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CAIRN-1114');
      assert.match(err.message, /order-refund@7 is not registered/);
      assert.match(err.message, /cairn workflows register, or POST \/v1\/projects\/\{project\}\/workflows/);
      return true;
    });
    assert.equal(worker.connected, false);
    // The refusal is final: the worker closed instead of scheduling another dial.
    assert.equal(cp.connections, 1);
    await worker.shutdown();
    assert.equal(cp.connections, 1);
  });
});
