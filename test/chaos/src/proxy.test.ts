import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { FaultProxy } from './proxy.js';

/** An echo server on loopback. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with what the socket received within `ms`. */
function received(s: Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (b: Buffer): void => {
      text += b.toString();
    };
    s.on('data', onData);
    setTimeout(() => {
      s.off('data', onData);
      resolve(text);
    }, ms);
  });
}

describe('fault proxy', () => {
  let echo: { server: Server; port: number };
  before(async () => {
    echo = await echoServer();
  });
  after(async () => {
    await new Promise((r) => echo.server.close(r));
  });

  it('passes bytes both ways, and a cut resets every connection', async () => {
    const proxy = await new FaultProxy('test', [{ host: '127.0.0.1', port: echo.port }]).listen();
    const s = await dial(proxy.port);
    const got = received(s, 200);
    s.write('hello');
    assert.equal(await got, 'hello');
    const closed = new Promise((r) => s.once('close', r));
    assert.equal(proxy.cut(), 1);
    await closed;
    assert.equal(proxy.connections, 0);
    await proxy.close();
  });

  it('holds bytes back in the blackholed direction only, and delivers them in order once healed', async () => {
    const proxy = await new FaultProxy('test', [{ host: '127.0.0.1', port: echo.port }]).listen();
    const s = await dial(proxy.port);
    proxy.set({ kind: 'blackhole', direction: 'down' });
    let got = received(s, 300);
    s.write('a');
    s.write('b');
    assert.equal(await got, '', 'nothing comes back while the way back is cut');
    got = received(s, 300);
    proxy.set({ kind: 'pass' });
    assert.equal(await got, 'ab');

    proxy.set({ kind: 'blackhole', direction: 'both' });
    got = received(s, 300);
    s.write('c');
    assert.equal(await got, '');
    got = received(s, 300);
    proxy.set({ kind: 'pass' });
    assert.equal(await got, 'c');
    s.destroy();
    await proxy.close();
  });

  it('delays bytes without reordering them', async () => {
    const proxy = await new FaultProxy('test', [{ host: '127.0.0.1', port: echo.port }]).listen();
    const s = await dial(proxy.port);
    proxy.set({ kind: 'delay', ms: 250 });
    const early = received(s, 150);
    s.write('1');
    s.write('2');
    assert.equal(await early, '', 'not before the delay');
    assert.equal(await received(s, 800), '12');
    s.destroy();
    await proxy.close();
  });

  it('routes a new connection to the next upstream when one refuses, as a load balancer would', async () => {
    const closed = await echoServer();
    await new Promise((r) => closed.server.close(r));
    const proxy = await new FaultProxy('test', [
      { host: '127.0.0.1', port: closed.port },
      { host: '127.0.0.1', port: echo.port },
    ]).listen();
    for (let i = 0; i < 2; i++) {
      const s = await dial(proxy.port);
      const got = received(s, 300);
      s.write(`x${i}`);
      assert.equal(await got, `x${i}`);
      s.destroy();
    }
    await proxy.close();
  });
});
