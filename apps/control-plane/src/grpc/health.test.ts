import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ServingStatus, decodeHealthCheckRequest, encodeHealthCheckResponse, healthHandlers, healthServiceDefinition } from './health.js';

interface HealthClient extends grpc.Client {
  check(request: Buffer, callback: (error: grpc.ServiceError | null, reply?: Buffer) => void): void;
}

/** A real gRPC server with the health service, and a client calling Check with a raw request. */
async function withHealthServer(
  serving: () => boolean,
  body: (check: (request: Buffer) => Promise<Buffer>) => Promise<void>,
): Promise<void> {
  const server = new grpc.Server();
  server.addService(healthServiceDefinition, healthHandlers(serving));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(healthServiceDefinition, 'Health');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
  try {
    await body(
      (request) =>
        new Promise((resolve, reject) => {
          client.check(request, (error, reply) => (error ? reject(error) : resolve(reply!)));
        }),
    );
  } finally {
    client.close();
    server.forceShutdown();
  }
}

describe('grpc.health.v1 Check', () => {
  test('reads the service name and skips fields it does not know', () => {
    assert.deepEqual(decodeHealthCheckRequest(Buffer.alloc(0)), { service: '' });
    const name = Buffer.from('cairn.worker.v1.WorkerService');
    // field 2 (varint 300), field 1 (the name), field 3 (fixed32)
    const request = Buffer.concat([Buffer.from([0x10, 0xac, 0x02, 0x0a, name.length]), name, Buffer.from([0x1d, 1, 2, 3, 4])]);
    assert.deepEqual(decodeHealthCheckRequest(request), { service: 'cairn.worker.v1.WorkerService' });
    assert.throws(() => decodeHealthCheckRequest(Buffer.from([0x0a, 0x05, 0x61])), /truncated/);
  });

  test('answers SERVING while serving and NOT_SERVING once stopping; an unknown service is NOT_FOUND', async () => {
    assert.deepEqual(encodeHealthCheckResponse(ServingStatus.SERVING), Buffer.from([0x08, 0x01]));
    let serving = true;
    await withHealthServer(
      () => serving,
      async (check) => {
        assert.deepEqual(await check(Buffer.alloc(0)), Buffer.from([0x08, 0x01]));
        const gateway = Buffer.from('cairn.gateway.v1.GatewayService');
        assert.deepEqual(await check(Buffer.concat([Buffer.from([0x0a, gateway.length]), gateway])), Buffer.from([0x08, 0x01]));
        await assert.rejects(check(Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])), { code: grpc.status.NOT_FOUND });
        await assert.rejects(check(Buffer.from([0x0f])), { code: grpc.status.INVALID_ARGUMENT });
        serving = false;
        assert.deepEqual(await check(Buffer.alloc(0)), Buffer.from([0x08, 0x02]));
      },
    );
  });
});
