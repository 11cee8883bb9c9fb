// @cairn/client against real processes: control plane, gateway and a worker on embedded Postgres,
// with the local model server. What an application does: start typed runs, answer approvals, send
// signals, await results and failures, cancel, read the timeline, and stream model tokens across
// a dropped connection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { freePort } from '@cairn/local-postgres';
import { CairnClient, CairnClientError, RunCancelledError, RunFailedError, workflowRef, type RunStreamEvent } from '@cairn/client';
import { startTestStack, type TestStack } from '../harness.js';
import { clientOrder, doomed, signalWaiter, streamer } from '../workflows.js';

/** A TCP proxy in front of the gateway whose connections a test can cut, as a network would. */
class CuttableProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  connections = 0;
  port = 0;

  private constructor(target: number) {
    this.#server = createServer((downstream) => {
      this.connections++;
      const upstream = connect(target, '127.0.0.1');
      for (const s of [downstream, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      downstream.pipe(upstream).pipe(downstream);
      downstream.on('close', () => upstream.destroy());
      upstream.on('close', () => downstream.destroy());
    });
  }

  static async start(target: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  /** Drops every open connection. */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('@cairn/client', () => {
  it('loads in a browser: it bundles for the browser platform with nothing from Node', async () => {
    const entry = fileURLToPath(import.meta.resolve('@cairn/client'));
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.text;
    assert.ok(code.includes('CairnClient') && code.includes('/v1/runs'), 'the bundle holds the client');
    assert.equal(/\bfrom\s*["']node:|require\(["']node:/.test(code), false, 'no node: import in the bundle');
  });

  describe('against a running stack', () => {
    let t: TestStack;
    let client: CairnClient;
    before(async () => {
      t = await startTestStack({ name: 'client', workers: 1, suspendThresholdMs: 300 });
      client = new CairnClient({ gatewayUrl: t.stack.gatewayUrl, token: t.stack.secrets.gatewayToken });
    });
    after(async () => {
      await t?.stop();
    });

    it('starts a typed run, answers its approval and signal, and resolves with its typed output', async () => {
      const key = `order-${randomUUID()}`;
      const run = await client.start(clientOrder, { orderId: 'o-1', amount: 25 }, { idempotencyKey: key });
      assert.equal(run.created, true);
      const again = await client.start(clientOrder, { orderId: 'o-1', amount: 25 }, { idempotencyKey: key });
      assert.deepEqual([again.runId, again.created], [run.runId, false], 'the same key returns the same run');

      const approved = await run.approve('refund', { by: 'maria', comment: 'ok', data: { limit: 20 } });
      assert.equal(approved.signal, 'approval.refund');
      const noted = await run.signal('note', { text: 'thanks' });
      assert.equal(noted.runId, run.runId);
      const output = await run.result({ timeoutMs: 60_000 });
      assert.deepEqual(output, { orderId: 'o-1', amount: 25, approved: true, by: 'maria', limit: 20, note: 'thanks' });

      const described = await client.run<typeof clientOrder>(run.runId).describe();
      assert.equal(described.run.status, 'completed');
      assert.equal(described.run.workflow, 'client-order');
      assert.deepEqual(described.output, output);
      assert.deepEqual(described.warnings, [], 'nothing keeps a run that ended');
      assert.deepEqual(
        described.steps.filter((s) => s.status === 'completed').map((s) => [s.kind, s.name]),
        [
          ['signal', 'approval.refund'],
          ['signal', 'note'],
        ],
      );
    });

    it('rejects an approval, by a reference to the workflow', async () => {
      const run = await client.start(workflowRef<typeof clientOrder>('client-order'), { orderId: 'o-2', amount: 5 });
      await run.reject('refund', { by: 'sam' });
      await run.signal('note', { text: 'sorry' });
      const output = await run.result();
      assert.equal(output.approved, false);
      assert.equal(output.by, 'sam');
    });

    it('rejects result() of a failed run with RunFailedError: the code and message the data plane kept', async () => {
      const run = await client.start(doomed, { secret: 'card-4242' });
      const err = await run.result().then(
        () => assert.fail('a failed run does not resolve'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof RunFailedError, String(err));
      assert.equal(err.code, 'CAIRN-2002', 'the code of the error that failed the run: the step failed for good');
      assert.equal(err.error?.name, 'StepFailedError');
      assert.equal(err.runStatus, 'failed');
      assert.equal(err.runId, run.runId);
      assert.match(err.error?.message ?? '', /card declined for card-4242/);
      assert.match(err.message, /card declined/);
    });

    it('cancels a waiting run: result() rejects with RunCancelledError', async () => {
      const run = await client.start(signalWaiter, { delayMs: 0 });
      await t.waitForRun(run.runId, (r) => r.status === 'suspended');
      const cancelled = await run.cancel();
      // A run that ran before is dispatched once more to run its compensations, then ends cancelled.
      assert.equal(cancelled.runId, run.runId);
      await assert.rejects(run.result(), (err: unknown) => err instanceof RunCancelledError && err.code === 'CAIRN-2006');
    });

    it('gives up waiting after timeoutMs with CAIRN-1122, and the run goes on', async () => {
      const run = await client.start(signalWaiter, { delayMs: 0 });
      await assert.rejects(
        run.result({ timeoutMs: 1_500 }),
        (err: unknown) => err instanceof CairnClientError && err.code === 'CAIRN-1122',
      );
      await run.signal('go', { late: true });
      assert.deepEqual(await run.result(), { timedOut: false, got: [{ late: true }] });
    });

    it("turns the gateway's refusals into CairnClientError with code, status, request ID and issues", async () => {
      const missing = await client
        .run(randomUUID())
        .describe()
        .catch((e: unknown) => e);
      assert.ok(missing instanceof CairnClientError);
      assert.deepEqual([missing.code, missing.status], ['CAIRN-1105', 404]);
      assert.match(missing.requestId ?? '', /./);

      const unknown = await client.start(workflowRef('no-such-workflow'), {}).catch((e: unknown) => e);
      assert.ok(unknown instanceof CairnClientError);
      assert.equal(unknown.code, 'CAIRN-1106');

      const bad = await client.start(clientOrder, { orderId: 'o', amount: 1 }, { priority: 500 }).catch((e: unknown) => e);
      assert.ok(bad instanceof CairnClientError);
      assert.deepEqual([bad.code, bad.status], ['CAIRN-1101', 400]);
      assert.deepEqual(
        bad.issues?.map((i) => `${i.in}:${i.path}`),
        ['body:priority'],
      );

      const noToken = new CairnClient({ gatewayUrl: t.stack.gatewayUrl });
      await assert.rejects(noToken.run(randomUUID()).describe(), (e: unknown) => e instanceof CairnClientError && e.code === 'CAIRN-1104');
    });

    it('takes the gateway and its token from CAIRN_GATEWAY_URL and CAIRN_GATEWAY_TOKEN when given no options', async () => {
      const saved = { url: process.env['CAIRN_GATEWAY_URL'], token: process.env['CAIRN_GATEWAY_TOKEN'] };
      try {
        delete process.env['CAIRN_GATEWAY_URL'];
        assert.throws(
          () => new CairnClient(),
          (e: unknown) => e instanceof CairnClientError && e.code === 'CAIRN-1101' && e.message.includes('CAIRN_GATEWAY_URL'),
        );
        process.env['CAIRN_GATEWAY_URL'] = t.stack.gatewayUrl;
        process.env['CAIRN_GATEWAY_TOKEN'] = t.stack.secrets.gatewayToken;
        const fromEnv = new CairnClient();
        const run = await fromEnv.start(clientOrder, { orderId: 'o-env', amount: 5 });
        assert.equal((await run.describe()).run.runId, run.runId);
        await run.cancel();
      } finally {
        for (const [name, value] of [
          ['CAIRN_GATEWAY_URL', saved.url],
          ['CAIRN_GATEWAY_TOKEN', saved.token],
        ] as const) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      }
    });

    it('sends a signal with an idempotency key again when its answer is lost or a 503, and the run gets it once', async () => {
      const run = await client.start(signalWaiter, { delayMs: 0, signals: 2, timeoutMs: 60_000 });
      const key = `paid-${randomUUID()}`;
      const sent: Array<string | null> = [];
      // The gateway gets every request; the first answer is lost with the connection, the second
      // is replaced by a 503 (as a proxy in front of the gateway may answer).
      const losing: typeof fetch = async (input, init) => {
        sent.push(new Headers(init?.headers).get('idempotency-key'));
        const res = await fetch(input, init);
        if (sent.length > 2) return res;
        await res.arrayBuffer();
        if (sent.length === 1) throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
        return new Response(JSON.stringify({ error: { code: 'CAIRN-1110', message: 'upstream unavailable' } }), {
          status: 503,
          headers: { 'content-type': 'application/json' },
        });
      };
      const flaky = new CairnClient({
        gatewayUrl: t.stack.gatewayUrl,
        token: t.stack.secrets.gatewayToken,
        fetch: losing,
        retry: { initialDelayMs: 20 },
      });
      const answer = await flaky.run(run.runId).signal('go', { invoice: 'in-7' }, { idempotencyKey: key });
      assert.deepEqual(sent, [key, key, key], 'sent three times, with its key each time');
      assert.equal(answer.created, false, 'the third request found the signal the first one stored');

      // Another signal, with another key: if the first had been delivered twice, the run would read it twice.
      const second = await client.run(run.runId).signal('go', { invoice: 'in-8' }, { idempotencyKey: `${key}-2` });
      assert.equal(second.created, true);
      assert.notEqual(second.signalId, answer.signalId);
      const output = await run.result({ timeoutMs: 60_000 });
      assert.deepEqual(output, { timedOut: false, got: [{ invoice: 'in-7' }, { invoice: 'in-8' }] });

      // The same key with another body is refused, and not retried.
      await assert.rejects(
        client.run(run.runId).signal('go', { invoice: 'in-9' }, { idempotencyKey: key }),
        (e: unknown) => e instanceof CairnClientError && e.code === 'CAIRN-1108' && e.status === 409,
      );
    });

    it('names the unreachable URL (CAIRN-1110), retries what is safe to repeat, and sends a start without a key once', async () => {
      const url = `http://127.0.0.1:${await freePort()}`;
      let calls = 0;
      const counting: typeof fetch = (input, init) => {
        calls++;
        return fetch(input, init);
      };
      const offline = new CairnClient({ gatewayUrl: url, fetch: counting, retry: { maxAttempts: 3, initialDelayMs: 10 } });
      const err = await offline
        .run(randomUUID())
        .cancel()
        .catch((e: unknown) => e);
      assert.ok(err instanceof CairnClientError);
      assert.equal(err.code, 'CAIRN-1110');
      assert.ok(err.message.includes(url), err.message);
      assert.equal(calls, 3, 'a cancel (safe to repeat) is tried 3 times');
      calls = 0;
      await assert.rejects(offline.run(randomUUID()).result(), /CAIRN-1110/);
      assert.equal(calls, 3, 'a read is tried 3 times');

      calls = 0;
      await assert.rejects(offline.start(clientOrder, { orderId: 'o', amount: 1 }), /CAIRN-1110/);
      assert.equal(calls, 1, 'a start without an idempotency key is not repeated');
      calls = 0;
      await assert.rejects(offline.start(clientOrder, { orderId: 'o', amount: 1 }, { idempotencyKey: 'k' }), /CAIRN-1110/);
      assert.equal(calls, 3, 'a start with an idempotency key is retried');
      calls = 0;
      await assert.rejects(offline.run(randomUUID()).signal('go', {}), /CAIRN-1110/);
      await assert.rejects(offline.run(randomUUID()).approve('refund', {}), /CAIRN-1110/);
      assert.equal(calls, 2, 'a signal or an approval without an idempotency key is not repeated');
      calls = 0;
      await assert.rejects(offline.run(randomUUID()).signal('go', {}, { idempotencyKey: 'k' }), /CAIRN-1110/);
      await assert.rejects(offline.run(randomUUID()).reject('refund', {}, { idempotencyKey: 'k' }), /CAIRN-1110/);
      assert.equal(calls, 6, 'a signal or an approval with an idempotency key is retried');
    });

    it('streams model tokens and resumes after a dropped connection: the full text exactly once', async () => {
      const words = Array.from({ length: 60 }, (_, i) => `token${i}`);
      await t.setModelScript({ rules: [{ contains: 'client-stream', text: words.join(' '), chunkDelayMs: 15 }] });
      const gatewayPort = Number(new URL(t.stack.gatewayUrl).port);
      const proxy = await CuttableProxy.start(gatewayPort);
      try {
        const proxied = new CairnClient({
          gatewayUrl: `http://127.0.0.1:${proxy.port}`,
          token: t.stack.secrets.gatewayToken,
          retry: { initialDelayMs: 50 },
        });
        const run = await client.start(streamer, { prompt: 'client-stream please' });
        const events: RunStreamEvent[] = [];
        let cut = false;
        let textAtCut = '';
        const reading = (async () => {
          for await (const event of proxied.run(run.runId).stream()) {
            events.push(event);
            if (event.type === 'delta' && !cut) {
              // Drop the connection mid-stream, as a flaky network would; the client resumes by itself.
              cut = true;
              textAtCut = event.text;
              proxy.cut();
            }
          }
        })();
        await client.run(run.runId).signal('go', {});
        await reading;
        const deltas = events.filter((e): e is Extract<RunStreamEvent, { type: 'delta' }> => e.type === 'delta');
        assert.equal(deltas.map((e) => e.text).join(''), words.join(' '), 'the model output, exactly once, in order');
        assert.ok(textAtCut.length < words.join(' ').length, 'the connection dropped before the output was complete');
        assert.ok(proxy.connections >= 2, 'the client reconnected');
        const ids = events.filter((e) => e.type !== 'end').map((e) => (e as { id: number }).id);
        assert.deepEqual(
          ids,
          ids.map((_, i) => i + 1),
          'event ids 1, 2, 3, … without gap or repeat',
        );
        assert.deepEqual(events.at(-1), { type: 'end', runId: run.runId, status: 'completed' });
        assert.deepEqual(await proxied.run<typeof streamer>(run.runId).result(), { text: words.join(' ') });
      } finally {
        await proxy.stop();
      }
    });
  });
});
