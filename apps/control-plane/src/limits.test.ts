// Attacks on a shared control plane by one credential, against a real control-plane process and real
// Postgres: a worker stream that sends but never reads, a Hello asking for 4294967295 slots, more
// streams and WaitRun calls than a data plane may hold, a flood of REST requests with one key while
// another tenant works, a tenant trying to raise its own limits, and a query that would hold a pooled
// connection.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { ConnectRequestSchema, create, toBinary, type ConnectRequest } from '@cairn/proto';
import { loadControlPlaneConfig } from './config.js';
import { BOOTSTRAP_KEY, controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, type ServiceClient } from './testing/grpc.js';

const execFileAsync = promisify(execFile);
const METRICS_TOKEN = `mt_${randomBytes(32).toString('base64url')}`;
const WORKFLOWS = [{ name: 'greet', version: 'v1', taskQueue: 'default' }];

/** A gRPC message frame: flag byte, 4-byte length, the protobuf bytes. */
function frame(request: ConnectRequest): Buffer {
  const body = toBinary(ConnectRequestSchema, request);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

async function metric(cp: ControlPlaneFixture, name: string): Promise<number> {
  const res = await fetch(`${cp.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  assert.ok(line, `metric ${name} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const kind = testPostgresKinds().includes('system') ? 'system' : 'embedded';

describe(`limits of a shared control plane on ${kind} Postgres`, () => {
  let server: PostgresServer;
  let cp: ControlPlaneFixture;
  let worker: ServiceClient;
  let gateway: ServiceClient;

  before(async () => {
    server = await testPostgres(kind);
    cp = await startControlPlaneProcess(server, {
      env: {
        CAIRN_METRICS_TOKEN: METRICS_TOKEN,
        CAIRN_CP_MAX_SLOTS_PER_STREAM: '3',
        CAIRN_CP_MAX_STREAMS_PER_DATA_PLANE: '4',
        CAIRN_CP_MAX_WAITS_PER_DATA_PLANE: '2',
        CAIRN_CP_STREAM_STALL_TIMEOUT_MS: '500',
        CAIRN_CP_RATE_LIMIT_PER_KEY: '20',
        CAIRN_CP_RATE_LIMIT_PER_DATA_PLANE: '20',
        CAIRN_CP_DATABASE_STATEMENT_TIMEOUT_MS: '1000',
        CAIRN_CP_GRPC_MAX_MESSAGE_BYTES: '65536',
        // Expired leases are swept at once (the lease test), not after a start-up grace.
        CAIRN_STARTUP_GRACE_MS: '0',
      },
    });
    worker = new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure());
    gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
  });

  after(async () => {
    worker?.close();
    gateway?.close();
    await cp?.close();
    await server?.stop();
  });

  test('a Hello with slots=4294967295 is granted at most the cap per stream', async () => {
    const plane = await cp.dataPlane('default', 'slots');
    const greedy = new WorkerStream(worker, plane.credential);
    await greedy.hello({ dataPlaneId: plane.id, slots: 4_294_967_295, workflows: WORKFLOWS });
    for (let i = 0; i < 8; i++) {
      await gatewayCall(gateway, 'startRun', { runId: randomUUID(), workflowName: 'greet', inputSize: 1n }, plane.credential);
    }
    for (let i = 0; i < 3; i++) await greedy.next('runTask');
    // Runs are still queued: another stream gets one; the greedy one holds exactly its cap.
    const other = new WorkerStream(worker, plane.credential);
    await other.hello({ dataPlaneId: plane.id, slots: 1, workflows: WORKFLOWS });
    await other.next('runTask');
    assert.equal(greedy.takeAll('runTask').length, 0);
    const running = await cp.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM runs WHERE data_plane_id = $1 AND status = 'running'",
      [plane.id],
    );
    assert.equal(running.rows[0]!.n, 4);
    assert.ok(cp.lines.some((l) => l.includes('granted the cap') && l.includes('"granted":3')));
    greedy.close();
    other.close();
  });

  test('a stream that sends but never reads is ended with RESOURCE_EXHAUSTED, and the replica stays bounded', async () => {
    const plane = await cp.dataPlane('default', 'never-reads');
    const rssBefore = await metric(cp, 'process_resident_memory_bytes');
    const session = http2.connect(`http://${cp.grpcAddress}`);
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/cairn.worker.v1.WorkerService/Connect',
      'content-type': 'application/grpc',
      te: 'trailers',
      authorization: `Bearer ${plane.credential}`,
    });
    stream.on('error', () => undefined);
    // Never read: no 'data' listener, so HTTP/2 flow control stops the control plane's sends.
    let sequence = 0n;
    const next = (message: ConnectRequest['message']): Buffer =>
      frame(create(ConnectRequestSchema, { sequence: (sequence += 1n), message }));
    stream.write(
      next({
        case: 'hello',
        value: {
          $typeName: 'cairn.worker.v1.Hello',
          dataPlaneId: plane.id,
          workerId: randomUUID(),
          workflows: [],
          slots: 1,
          freeSlots: 1,
          heldLeases: [],
          sdkVersion: '0.1.0',
          protocolVersion: 1,
        },
      }),
    );
    // Each SlotsUpdate is answered with an Ack: 500,000 requests, 500,000 answers nobody reads
    // (unbounded, that is hundreds of megabytes of queued answers in the replica).
    const SENT = 500_000;
    const batch: Buffer[] = [];
    for (let i = 0; i < SENT; i++) {
      batch.push(next({ case: 'slots', value: { $typeName: 'cairn.worker.v1.SlotsUpdate', freeSlots: 1, draining: false } }));
      if (batch.length === 1000) stream.write(Buffer.concat(batch.splice(0)));
    }
    await until(
      'the stream to be ended as stalled',
      async () => (await metric(cp, 'cairn_limit_refusals_total{limit="stream_stalled"}')) >= 1,
    );
    assert.equal(await metric(cp, 'cairn_worker_stream_send_queued'), 0, 'the ended stream holds no queued messages');
    const rssAfter = await metric(cp, 'process_resident_memory_bytes');
    assert.ok(rssAfter - rssBefore < 128 * 1024 * 1024, `the replica grew by ${rssAfter - rssBefore} bytes`);

    // Reading now: a bounded number of answers, then the status that says why.
    let received = 0;
    let pendingBytes = Buffer.alloc(0);
    stream.on('data', (chunk: Buffer) => {
      pendingBytes = Buffer.concat([pendingBytes, chunk]);
      while (pendingBytes.length >= 5 && pendingBytes.length >= 5 + pendingBytes.readUInt32BE(1)) {
        pendingBytes = pendingBytes.subarray(5 + pendingBytes.readUInt32BE(1));
        received++;
      }
    });
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve));
    assert.equal(trailers['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
    const message = decodeURIComponent(String(trailers['grpc-message']));
    assert.match(message, /CAIRN-1171/);
    assert.match(message, /keep reading its stream/);
    assert.ok(received < SENT / 10, `the control plane answered ${received} of ${SENT} requests before ending the stream`);
    stream.close();
    session.close();
  });

  test('a message larger than the inbound limit is refused before it is decoded', async () => {
    const plane = await cp.dataPlane('default', 'big-message');
    const session = http2.connect(`http://${cp.grpcAddress}`);
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/cairn.worker.v1.WorkerService/Connect',
      'content-type': 'application/grpc',
      te: 'trailers',
      authorization: `Bearer ${plane.credential}`,
    });
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1024 * 1024, 1);
    stream.write(Buffer.concat([head, Buffer.alloc(1024 * 1024, 0x41)]));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
      stream.once('trailers', resolve);
      // A status sent before any message comes as response headers (a trailers-only answer).
      stream.once('response', (headers) => {
        if (headers['grpc-status'] !== undefined) resolve(headers);
      });
    });
    assert.equal(trailers['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
    assert.match(decodeURIComponent(String(trailers['grpc-message'])), /larger than (max|65536)/i);
    stream.close();
    session.close();
  });

  test('streams and WaitRun calls per data plane are capped with RESOURCE_EXHAUSTED; another data plane is unaffected', async () => {
    const plane = await cp.dataPlane('default', 'many-streams');
    const open: WorkerStream[] = [];
    for (let i = 0; i < 4; i++) {
      const s = new WorkerStream(worker, plane.credential);
      await s.hello({ dataPlaneId: plane.id, slots: 0, workflows: WORKFLOWS });
      open.push(s);
    }
    const fifth = new WorkerStream(worker, plane.credential);
    fifth.sendHello({ dataPlaneId: plane.id, slots: 0, workflows: WORKFLOWS });
    const status = await fifth.ended();
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(status.details, /CAIRN-1172/);
    assert.match(status.details, /4 worker streams open/);
    assert.deepEqual(status.metadata.get('retry-after'), ['1']);
    // One stream ends: a new one is accepted again.
    open.pop()!.close();
    await until('the closed stream to be released', async () => {
      const again = new WorkerStream(worker, plane.credential);
      again.sendHello({ dataPlaneId: plane.id, slots: 0, workflows: WORKFLOWS });
      const answer = await Promise.race([again.next('welcome').then(() => 'welcome'), again.ended().then(() => 'ended')]);
      if (answer === 'welcome') open.push(again);
      return answer === 'welcome';
    });

    const runId = randomUUID();
    await gatewayCall(gateway, 'startRun', { runId, workflowName: 'greet', inputSize: 1n }, plane.credential);
    const waits = [0, 1].map(() =>
      gatewayCall(gateway, 'waitRun', { runId, timeoutMs: 30_000 }, plane.credential).catch((e: unknown) => e),
    );
    // The third WaitRun is refused while two are in flight (they wait for a run that does not end).
    await until('two WaitRun calls in flight', async () => {
      try {
        await gatewayCall(gateway, 'waitRun', { runId, timeoutMs: 1 }, plane.credential);
        return false;
      } catch (error) {
        const e = error as grpc.ServiceError;
        assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED, e.details);
        assert.match(e.details, /CAIRN-1172/);
        assert.match(e.details, /2 WaitRun calls in flight/);
        return true;
      }
    });
    // Another data plane's calls are not affected.
    const neighbour = await cp.dataPlane('default', 'neighbour');
    await assert.rejects(
      gatewayCall(gateway, 'waitRun', { runId: randomUUID(), timeoutMs: 1 }, neighbour.credential),
      (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.NOT_FOUND, e.details);
        return true;
      },
    );
    await gatewayCall(gateway, 'cancelRun', { runId }, plane.credential);
    await Promise.all(waits);
    for (const s of open) s.close();
  });

  /**
   * Tenant A gets 2,000 runs due before tenant B's one, all in one transaction so one sweep sees
   * them; at most one batch share of A's may be queued before B's.
   */
  async function fairSweep(name: string, due: { status: string; set: string; column: string }): Promise<void> {
    const a = await cp.dataPlane('default', `${name}-a`);
    const b = await cp.dataPlane('default', `${name}-b`);
    const streams: WorkerStream[] = [];
    const runs: string[] = [];
    for (const plane of [a, b]) {
      // Announces the workflow but takes no runs: what the sweep queues stays queued, to be compared.
      const s = new WorkerStream(worker, plane.credential);
      await s.hello({ dataPlaneId: plane.id, slots: 0, workflows: WORKFLOWS });
      streams.push(s);
      const runId = randomUUID();
      await gatewayCall(gateway, 'startRun', { runId, workflowName: 'greet', inputSize: 1n }, plane.credential);
      runs.push(runId);
    }
    const [aRun, bRun] = runs as [string, string];
    const BACKLOG = 2_000;
    const tx = await cp.sql.connect();
    try {
      await tx.query('BEGIN');
      await tx.query(
        `INSERT INTO runs
         SELECT (jsonb_populate_record(NULL::runs, to_jsonb(r) || jsonb_build_object(
                   'id', gen_random_uuid(), 'status', $3::text, 'queued_at', NULL,
                   $4::text, now() - interval '1 hour' + g * interval '1 millisecond') || $5::jsonb)).*
         FROM runs r, generate_series(1, $2::int) g WHERE r.id = $1`,
        [aRun, BACKLOG, due.status, due.column, JSON.stringify(JSON.parse(`{${due.set}}`))],
      );
      await tx.query(
        `UPDATE runs SET status = $2, queued_at = NULL, ${due.column} = now() - interval '1 minute' WHERE id = ANY($1::uuid[])`,
        [[aRun, bRun], due.status],
      );
      if (due.status === 'suspended') await tx.query("UPDATE runs SET suspend_reason = 'sleep' WHERE id = ANY($1::uuid[])", [[aRun, bRun]]);
      await tx.query('COMMIT');
    } catch (error) {
      await tx.query('ROLLBACK');
      throw error;
    } finally {
      tx.release();
    }
    await until(`every due run of ${name} to be queued`, async () => {
      const left = await cp.sql.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM runs WHERE data_plane_id = ANY($1::uuid[]) AND status = $2',
        [[a.id, b.id], due.status],
      );
      return left.rows[0]!.n === 0;
    });
    const ahead = await cp.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM runs
       WHERE data_plane_id = $1 AND queued_at < (SELECT queued_at FROM runs WHERE id = $2)`,
      [a.id, bRun],
    );
    assert.ok(ahead.rows[0]!.n <= 100, `${ahead.rows[0]!.n} of tenant A's ${BACKLOG + 1} runs were queued before tenant B's`);
    const queuedA = await cp.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM runs WHERE data_plane_id = $1 AND status = 'queued'",
      [a.id],
    );
    assert.equal(queuedA.rows[0]!.n, BACKLOG + 1, "all of tenant A's runs were queued too");
    for (const s of streams) s.close();
  }

  test("a tenant's backlog of due timers does not hold back another tenant's timer", async () => {
    await fairSweep('timers', { status: 'suspended', set: '"suspend_reason": "sleep"', column: 'wake_at' });
  });

  test("a tenant's mass of expired leases does not hold back another tenant's recovery", async () => {
    await fairSweep('leases', { status: 'running', set: `"lease_worker": "${randomUUID()}", "epoch": 1`, column: 'lease_expires_at' });
  });

  test('a flood of REST requests with one key gets 429 with Retry-After; another tenant is still served; the tenant cannot raise its limit', async () => {
    const flooder = await cp.key('admin');
    // Another organisation, made by the operator.
    const { stdout } = await execFileAsync(process.execPath, [controlPlaneMain, 'organizations', 'create', '--organization', 'neighbour'], {
      env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: cp.databaseUrl, CAIRN_LOG_LEVEL: 'error' },
    });
    const neighbourKey = (JSON.parse(stdout) as { apiKey: string }).apiKey;

    const statuses: number[] = [];
    let limited: Response | null = null;
    for (let i = 0; i < 400 && !limited; i++) {
      const res = await fetch(`${cp.httpUrl}/v1/whoami`, { headers: { authorization: `Bearer ${flooder}` } });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    assert.ok(limited, `no 429 in ${statuses.join(',')}`);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    const body = (await limited.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'CAIRN-1113');
    assert.match(body.error.message, /this api key may make 20 requests per second/);
    assert.match(body.error.message, /control-plane limits set/);
    // The other tenant, and another key of the same tenant, are served meanwhile.
    assert.equal((await cp.api('GET', '/v1/whoami', { key: neighbourKey })).status, 200);
    assert.equal((await cp.api('GET', '/v1/whoami', { key: BOOTSTRAP_KEY })).status, 200);

    // The tenant's own admin key has no way to raise it: no route takes the limits, and the
    // quota route (its own budget) refuses the fields.
    await new Promise((r) => setTimeout(r, 1_000));
    for (const path of ['/v1/limits', '/v1/organization/limits', '/v1/projects/default/limits']) {
      const res = await fetch(`${cp.httpUrl}${path}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${flooder}`, 'content-type': 'application/json' },
        body: JSON.stringify({ requestsPerSecondPerKey: 1_000_000 }),
      });
      assert.equal(res.status, 404, path);
    }
    const quota = await cp.api('PUT', '/v1/projects/default/quotas', {
      key: flooder,
      body: { maxConcurrentRuns: null, maxStepsPerMonth: null, requestsPerSecondPerKey: 1_000_000 },
    });
    assert.equal(quota.status, 400);
    const stored = await cp.sql.query('SELECT * FROM organization_limits');
    assert.equal(stored.rowCount, 0);

    // The operator can: an organisation's own limit, set with the admin command, applies to its keys.
    const admin = { env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: cp.databaseUrl, CAIRN_LOG_LEVEL: 'error' } };
    const made = await execFileAsync(process.execPath, [controlPlaneMain, 'organizations', 'create', '--organization', 'lowered'], admin);
    const loweredKey = (JSON.parse(made.stdout) as { apiKey: string }).apiKey;
    const { stdout: set } = await execFileAsync(
      process.execPath,
      [controlPlaneMain, 'limits', 'set', '--organization', 'lowered', '--requests-per-second-per-key', '1'],
      admin,
    );
    assert.equal((JSON.parse(set) as { limits: { requestsPerSecondPerKey: number } }).limits.requestsPerSecondPerKey, 1);
    // The tenant's auditors see the change.
    const audited = await cp.sql.query<{ action: string; metadata: Record<string, unknown> }>(
      `SELECT a.action, a.metadata FROM audit_log a JOIN projects p ON p.id = a.project_id JOIN organizations o ON o.id = p.organization_id
       WHERE o.name = 'lowered' AND a.action = 'limits.updated'`,
    );
    assert.equal(audited.rowCount, 1);
    assert.equal(audited.rows[0]!.metadata['requestsPerSecondPerKey'], 1);
    assert.equal(audited.rows[0]!.metadata['previousRequestsPerSecondPerKey'], null);
    let lowered: Response | null = null;
    for (let i = 0; i < 20 && !lowered; i++) {
      const res = await fetch(`${cp.httpUrl}/v1/whoami`, { headers: { authorization: `Bearer ${loweredKey}` } });
      if (res.status === 429) lowered = res;
      else await res.arrayBuffer();
    }
    assert.ok(lowered, 'the operator-set limit applies');
    assert.match(((await lowered.json()) as { error: { message: string } }).error.message, /may make 1 requests per second/);
  });

  test('a flood of gRPC calls with one data-plane credential gets RESOURCE_EXHAUSTED with retry-after; another data plane is served', async () => {
    const flooder = await cp.dataPlane('default', 'grpc-flood');
    const neighbour = await cp.dataPlane('default', 'grpc-neighbour');
    const describe = (token: string) => gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, token);
    let refused: grpc.ServiceError | null = null;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        await describe(flooder.credential);
      } catch (error) {
        const e = error as grpc.ServiceError;
        if (e.code === grpc.status.RESOURCE_EXHAUSTED) refused = e;
        else assert.equal(e.code, grpc.status.NOT_FOUND, e.details);
      }
    }
    assert.ok(refused, 'the flood was never refused');
    assert.match(refused.details, /CAIRN-1113/);
    assert.match(refused.details, /this data plane may make 20 requests per second/);
    assert.ok(Number(refused.metadata.get('retry-after')[0]) >= 1);
    await assert.rejects(describe(neighbour.credential), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND, e.details);
      return true;
    });
  });

  test('a statement that would hold a pooled connection is cancelled by the statement timeout: 503 CAIRN-1170, then served again', async () => {
    // Someone holds a lock the request needs: without a timeout the request (and its connection) would wait for ever.
    const holder = await cp.sql.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE projects IN ACCESS EXCLUSIVE MODE');
      const res = await cp.api<{ error: { code: string; message: string } }>('GET', '/v1/projects', { key: BOOTSTRAP_KEY });
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'CAIRN-1170');
      assert.match(res.body.error.message, /statement timeout/);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    assert.equal((await cp.api('GET', '/v1/projects', { key: BOOTSTRAP_KEY })).status, 200);
  });
});

describe('limits configuration', () => {
  const base = { CAIRN_CP_DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };

  test('defaults suited to production, and a bad value stops the start naming the variable', () => {
    const limits = loadControlPlaneConfig(base).limits;
    assert.deepEqual(limits, {
      statementTimeoutMs: 30_000,
      grpcMaxMessageBytes: 4 * 1024 * 1024,
      streamSendQueue: 1024,
      streamStallTimeoutMs: 30_000,
      maxSlotsPerStream: 256,
      maxStreamsPerDataPlane: 256,
      maxWaitsPerDataPlane: 512,
      requestsPerSecondPerKey: 100,
      requestsPerSecondPerDataPlane: 1000,
      requestsPerSecondPerOrganization: 2000,
    });
    assert.throws(() => loadControlPlaneConfig({ ...base, CAIRN_CP_MAX_SLOTS_PER_STREAM: '0' }), /CAIRN_CP_MAX_SLOTS_PER_STREAM/);
    assert.throws(() => loadControlPlaneConfig({ ...base, CAIRN_CP_RATE_LIMIT_PER_KEY: 'many' }), /CAIRN_CP_RATE_LIMIT_PER_KEY/);
    assert.throws(() => loadControlPlaneConfig({ ...base, CAIRN_CP_GRPC_MAX_MESSAGE_BYTES: '1024' }), /CAIRN_CP_GRPC_MAX_MESSAGE_BYTES/);
    assert.throws(
      () => loadControlPlaneConfig({ ...base, CAIRN_CP_MAX_SLOTS_PER_STREAM: '2000' }),
      /CAIRN_CP_STREAM_SEND_QUEUE: must be larger than CAIRN_CP_MAX_SLOTS_PER_STREAM/,
    );
  });
});
