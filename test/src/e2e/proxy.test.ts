import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHttpProxy, type HttpProxy } from '../http-proxy.js';
import { startTestStack, type TestStack } from '../harness.js';

/**
 * A cluster whose egress goes through an HTTP proxy: a worker started with HTTPS_PROXY and
 * HTTP_PROXY (upper case, as most platforms set them) dials the control plane through a CONNECT
 * tunnel and calls its model provider through the proxy; NO_PROXY hosts are reached directly.
 */
describe('egress through an HTTP proxy', () => {
  let t: TestStack;
  let proxy: HttpProxy;
  /** The gateway's own proxy, so that what the workers send through theirs is told apart. */
  let gatewayProxy: HttpProxy;
  before(async () => {
    proxy = await startHttpProxy();
    gatewayProxy = await startHttpProxy();
    t = await startTestStack({ name: 'proxy', workers: 0, gatewayEnv: { HTTPS_PROXY: gatewayProxy.url, HTTP_PROXY: gatewayProxy.url } });
  });
  after(async () => {
    await t?.stop();
    await proxy?.close();
    await gatewayProxy?.close();
  });

  it('sends the gateway’s calls to the control plane through its proxy', async () => {
    // A run the gateway does not know: it asks the control plane, which answers 404.
    const res = await t.gateway('GET', '/v1/runs/0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b');
    assert.equal(res.status, 404);
    const grpcAddress = t.stack.controlPlanes[0]!.grpcAddress;
    assert.ok(gatewayProxy.tunnels.includes(grpcAddress), `a tunnel to ${grpcAddress}: ${JSON.stringify(gatewayProxy.tunnels)}`);
    assert.ok(t.stack.gateway!.lines.some((l) => l.includes('dialling the control plane through the HTTP proxy')));
  });

  const stopWorkers = async () => {
    for (const w of t.stack.workers.filter((w) => w.running)) {
      w.signal('SIGTERM');
      assert.equal(await w.exited, 0);
    }
  };

  it('dials the control plane through a CONNECT tunnel and calls the model provider through the proxy', async () => {
    const worker = await t.stack.startWorker({ env: { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url } });
    assert.ok(
      worker.lines.some((l) => l.includes('through the HTTP proxy') && l.includes(proxy.url)),
      'the worker says which proxy it uses',
    );
    await t.setModelScript({ rules: [{ contains: 'proxied ', text: 'answered through the proxy' }] });
    const runId = await t.start('model-call', { prompt: 'proxied hello' });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    assert.equal((result.output as { text: string }).text, 'answered through the proxy');

    const grpcAddress = t.stack.controlPlanes[0]!.grpcAddress;
    assert.ok(proxy.tunnels.includes(grpcAddress), `a tunnel to the control plane (${grpcAddress}): ${JSON.stringify(proxy.tunnels)}`);
    // undici tunnels http:// requests through the proxy too (CONNECT), like https:// ones.
    const modelHost = new URL(t.stack.mockLlm!.url).host;
    assert.ok(
      proxy.tunnels.includes(modelHost) || proxy.requests.some((r) => r.startsWith(`POST http://${modelHost}/`)),
      `the model call went through the proxy (${modelHost}): ${JSON.stringify(proxy)}`,
    );
    await stopWorkers();
  });

  it('reaches NO_PROXY hosts directly', async () => {
    const [tunnels, requests] = [proxy.tunnels.length, proxy.requests.length];
    await t.stack.startWorker({ env: { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
    await t.setModelScript({ rules: [{ contains: 'direct ', text: 'answered directly' }] });
    const result = await t.result(await t.start('model-call', { prompt: 'direct hello' }));
    assert.equal(result.status, 'completed');
    assert.equal((result.output as { text: string }).text, 'answered directly');
    assert.deepEqual([proxy.tunnels.length, proxy.requests.length], [tunnels, requests], 'nothing went through the proxy');
    await stopWorkers();
  });

  it('refuses a proxy value that is not a URL, naming the variable', async () => {
    const worker = await t.stack.startWorker({ env: { HTTPS_PROXY: 'proxy.internal:3128' } }).catch((err: unknown) => err);
    const text = worker instanceof Error ? worker.message : (worker as { lines: string[] }).lines.join('\n');
    assert.match(text, /HTTPS_PROXY is not an http:\/\/ or https:\/\/ URL: give the proxy as http:\/\/host:port/);
  });
});
