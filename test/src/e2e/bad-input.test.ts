import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import {
  ConnectRequestSchema,
  RejectionReason,
  WorkerService,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
} from '@cairn/proto';
import { CairnClient, CairnClientError } from '@cairn/client';
import { startTestStack, type TestStack } from '../harness.js';
import { fiveSteps } from '../workflows.js';

interface Stream {
  write(m: unknown): boolean;
  end(): void;
  on(event: 'data', cb: (m: ConnectResponse) => void): void;
  on(event: 'error', cb: (e: grpc.ServiceError) => void): void;
  on(event: 'end', cb: () => void): void;
}

describe('bad input', () => {
  let t: TestStack;
  let countRuns: () => Promise<number>;
  let dp: pg.Client;
  before(async () => {
    t = await startTestStack({ name: 'badinput', workers: 1, gateway: true });
    dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
    countRuns = async () => Number((await dp.query<{ n: string }>('SELECT count(*) AS n FROM dp_runs')).rows[0]?.n);
  });
  after(async () => {
    await dp?.end();
    await t?.stop();
  });

  const json = { 'content-type': 'application/json' };

  it('gateway: a clear 4xx with a stable code for each kind of bad request, and nothing stored', async () => {
    const before = await countRuns();
    const cases: Array<{ name: string; res: Promise<Response>; status: number; code: string; mentions: RegExp }> = [
      {
        name: 'unknown workflow',
        res: t.gateway('POST', '/v1/runs', { body: JSON.stringify({ workflow: 'no-such-flow', input: {} }), headers: json }),
        status: 404,
        code: 'CAIRN-1106',
        mentions: /no-such-flow/,
      },
      {
        name: 'malformed JSON',
        res: t.gateway('POST', '/v1/runs', { body: '{"workflow": "five-steps", ', headers: json }),
        status: 400,
        code: 'CAIRN-1102',
        mentions: /JSON/i,
      },
      {
        name: 'oversize payload',
        res: t.gateway('POST', '/v1/runs', {
          body: JSON.stringify({ workflow: 'five-steps', input: { blob: 'x'.repeat(2 * 1024 * 1024) } }),
          headers: json,
        }),
        status: 413,
        code: 'CAIRN-1103',
        mentions: /CAIRN_GATEWAY_MAX_PAYLOAD_BYTES/,
      },
      {
        name: 'wrong token',
        res: fetch(`${t.stack.gatewayUrl}/v1/runs`, { method: 'POST', headers: { authorization: 'Bearer nope', ...json }, body: '{}' }),
        status: 401,
        code: 'CAIRN-1104',
        mentions: /token/i,
      },
      {
        name: 'invalid workflow name',
        res: t.gateway('POST', '/v1/runs', { body: JSON.stringify({ workflow: 'drop table; --', input: {} }), headers: json }),
        status: 400,
        code: 'CAIRN-1107',
        mentions: /letter/,
      },
      { name: 'unknown run', res: t.gateway('GET', `/v1/runs/${randomUUID()}`), status: 404, code: 'CAIRN-1105', mentions: /run/i },
      { name: 'malformed run id', res: t.gateway('GET', '/v1/runs/not-a-uuid'), status: 400, code: 'CAIRN-1101', mentions: /run id/i },
      {
        name: 'signal to an unknown run',
        res: t.gateway('POST', `/v1/runs/${randomUUID()}/signals/go`, { body: '{}', headers: json }),
        status: 404,
        code: 'CAIRN-1105',
        mentions: /run/i,
      },
      {
        name: 'malformed signal body',
        res: t.gateway('POST', `/v1/runs/${randomUUID()}/signals/go`, { body: '{oops', headers: json }),
        status: 400,
        code: 'CAIRN-1102',
        mentions: /JSON/i,
      },
    ];
    for (const c of cases) {
      const res = await c.res;
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      assert.equal(res.status, c.status, `${c.name}: ${JSON.stringify(body)}`);
      assert.equal(body.error?.code, c.code, c.name);
      assert.match(body.error?.message ?? '', c.mentions, c.name);
    }
    assert.equal(await countRuns(), before, 'no input was left behind by a refused start');
    const signals = await dp.query('SELECT count(*)::int AS n FROM dp_signals');
    assert.equal((signals.rows[0] as { n: number }).n, 0);
    // The gateway is still serving.
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    assert.equal((await t.result(runId)).status, 'completed');
  });

  it('gateway and client: deep nesting, 1e400 and lone surrogates are refused with a clear 400, never stored as null or invalid JSON', async () => {
    const before = await countRuns();
    const deep = `${'['.repeat(3_000)}${']'.repeat(3_000)}`;
    const runId = randomUUID();
    const cases: Array<{ name: string; path: string; body: string; code: string; mentions: RegExp }> = [
      {
        name: 'input nested 3,000 levels',
        path: '/v1/runs',
        body: `{"workflow":"five-steps","input":${deep}}`,
        code: 'CAIRN-1173',
        mentions: /nested more than 128 levels/,
      },
      {
        name: '1e400 in an input',
        path: '/v1/runs',
        body: '{"workflow":"five-steps","input":{"step3Ms":1e400}}',
        code: 'CAIRN-1174',
        mentions: /\/input\/step3Ms .*stored as null/,
      },
      {
        name: 'lone surrogate in an input',
        path: '/v1/runs',
        body: '{"workflow":"five-steps","input":{"step3Ms":1,"note":"\\ud800"}}',
        code: 'CAIRN-1175',
        mentions: /\/input\/note with a lone UTF-16 surrogate/,
      },
      {
        name: '1e400 in a signal body',
        path: `/v1/runs/${runId}/signals/go`,
        body: '{"amount":-1e400}',
        code: 'CAIRN-1174',
        mentions: /\/amount/,
      },
      {
        name: 'lone surrogate in a signal body',
        path: `/v1/runs/${runId}/signals/go`,
        body: '{"by":"\\udfff"}',
        code: 'CAIRN-1175',
        mentions: /\/by/,
      },
      { name: 'signal body nested 3,000 levels', path: `/v1/runs/${runId}/signals/go`, body: deep, code: 'CAIRN-1173', mentions: /nested/ },
    ];
    for (const c of cases) {
      const res = await t.gateway('POST', c.path, { body: c.body, headers: json });
      const text = await res.text();
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      assert.equal(res.status, 400, `${c.name}: ${text}`);
      assert.equal(body.error?.code, c.code, c.name);
      assert.match(body.error?.message ?? '', c.mentions, c.name);
    }
    assert.equal(await countRuns(), before, 'nothing was stored');

    // The client refuses such a value before sending it (JSON.stringify would have sent null).
    const client = new CairnClient({ gatewayUrl: t.stack.gatewayUrl, token: t.stack.secrets.gatewayToken });
    await assert.rejects(client.start(fiveSteps, { step3Ms: Number.POSITIVE_INFINITY }), (err: unknown) => {
      assert.ok(err instanceof CairnClientError, String(err));
      assert.equal(err.code, 'CAIRN-1174');
      assert.equal(err.status, undefined, 'refused before any request');
      return true;
    });
    await assert.rejects(client.start(fiveSteps, { step3Ms: 1, note: 'x\ud800' } as { step3Ms: number }), (err: unknown) => {
      assert.ok(err instanceof CairnClientError, String(err));
      assert.equal(err.code, 'CAIRN-1175');
      return true;
    });
    assert.equal(await countRuns(), before, 'nothing was stored');

    // Well-formed values still go through: paired surrogates and the largest double.
    const ok = await client.start(fiveSteps, { step3Ms: 1, stepMs: 1, note: 'ok 😀', big: 1.7976931348623157e308 } as { step3Ms: number });
    assert.equal((await t.result(ok.runId)).status, 'completed');
  });

  function open(token: string): Stream {
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(WorkerService), 'WorkerService');
    const client = new Client(t.stack.controlPlanes[0]!.grpcAddress, grpc.credentials.createInsecure()) as unknown as {
      connect(md: grpc.Metadata): Stream;
    };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    return client.connect(md);
  }

  function collect(stream: Stream): Promise<{ messages: ConnectResponse[]; error?: grpc.ServiceError }> {
    const messages: ConnectResponse[] = [];
    return new Promise((resolve) => {
      stream.on('data', (m) => messages.push(m));
      stream.on('error', (error) => resolve({ messages, error }));
      stream.on('end', () => resolve({ messages }));
    });
  }

  const msg = (m: Partial<ConnectRequest>) => create(ConnectRequestSchema, m as ConnectRequest);

  it('worker stream: a wrong credential is refused', async () => {
    const s = open('cdp_wrong');
    const done = collect(s);
    s.write(msg({ sequence: 1n, message: { case: 'heartbeat', value: { sentAt: BigInt(Date.now()) } } as ConnectRequest['message'] }));
    const { error } = await done;
    assert.equal(error?.code, grpc.status.UNAUTHENTICATED);
  });

  it('worker stream: messages before Hello are refused with a clear status', async () => {
    const s = open(t.stack.secrets.dataPlaneCredential);
    const done = collect(s);
    s.write(msg({ sequence: 1n, message: { case: 'stepReports', value: { reports: [] } } as unknown as ConnectRequest['message'] }));
    const { messages, error } = await done;
    assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(error?.details ?? '', /Hello/);
    assert.equal(messages[0]?.message.case, 'rejection');
    assert.equal(messages[0]?.message.case === 'rejection' ? messages[0].message.value.reason : undefined, RejectionReason.HELLO_REQUIRED);
  });

  it('worker stream: free text in a name field and a completion for a lease not held are rejected, the stream lives on', async () => {
    const s = open(t.stack.secrets.dataPlaneCredential);
    const got: ConnectResponse[] = [];
    s.on('data', (m) => got.push(m));
    s.on('error', () => undefined);
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(pred());
    };
    s.write(
      msg({
        sequence: 1n,
        message: {
          case: 'hello',
          value: {
            dataPlaneId: t.stack.secrets.dataPlaneId,
            workerId: randomUUID(),
            workflows: [],
            slots: 0,
            freeSlots: 0,
            heldLeases: [],
            sdkVersion: '0.1.0',
            protocolVersion: 1,
          },
        } as unknown as ConnectRequest['message'],
      }),
    );
    await until(() => got.some((m) => m.message.case === 'welcome'));
    s.write(
      msg({
        sequence: 2n,
        message: { case: 'completed', value: { runId: randomUUID(), epoch: 1, outputSize: 1n } } as unknown as ConnectRequest['message'],
      }),
    );
    s.write(
      msg({
        sequence: 3n,
        message: {
          case: 'suspended',
          value: { runId: randomUUID(), epoch: 1, reason: 2, signalName: 'please refund jane@example.com', wakeAt: 0n, signalsConsumed: 0 },
        } as unknown as ConnectRequest['message'],
      }),
    );
    await until(() => got.filter((m) => m.message.case === 'rejection').length >= 2);
    const rejections = got.flatMap((m) => (m.message.case === 'rejection' ? [m.message.value] : []));
    const bySeq = new Map(rejections.map((r) => [Number(r.sequence), r]));
    assert.ok([RejectionReason.LEASE_NOT_HELD, RejectionReason.UNKNOWN_RUN].includes(bySeq.get(2)!.reason));
    assert.equal(bySeq.get(3)?.reason, RejectionReason.INVALID_FIELD);
    assert.equal(bySeq.get(3)?.field, 'signal_name');
    s.write(msg({ sequence: 4n, message: { case: 'heartbeat', value: { sentAt: BigInt(Date.now()) } } as ConnectRequest['message'] }));
    s.end();
  });

  it('worker stream: undecodable bytes end only that stream; the control plane keeps serving', async () => {
    const def = grpcServiceDefinition(WorkerService);
    const raw = { ...def, connect: { ...def['connect']!, requestSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } };
    const Client = grpc.makeGenericClientConstructor(raw, 'WorkerService');
    const client = new Client(t.stack.controlPlanes[0]!.grpcAddress, grpc.credentials.createInsecure()) as unknown as {
      connect(md: grpc.Metadata): { write(b: Buffer): void; on(e: string, cb: (x: unknown) => void): void; end(): void };
    };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${t.stack.secrets.dataPlaneCredential}`);
    const s = client.connect(md);
    const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      s.on('error', (e) => resolve(e as grpc.ServiceError));
      s.on('end', () => resolve(undefined));
      s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
    });
    assert.ok(error, 'the stream was ended with an error status');
    assert.notEqual(error.code, grpc.status.OK);
    // Still alive and dispatching.
    const health = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/readyz`);
    assert.equal(health.status, 200);
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    assert.equal((await t.result(runId)).status, 'completed');
  });
});
