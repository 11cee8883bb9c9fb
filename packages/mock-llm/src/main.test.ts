// The mock as a process: what `node dist/main.js` does, over real sockets.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const mainTs = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');
const dir = mkdtempSync(join(tmpdir(), 'cairn-mock-llm-'));

interface Started {
  child: ChildProcess;
  listening: Promise<{ port: number; line: Record<string, unknown> }>;
  exited: Promise<{ code: number | null; stderr: string }>;
}

function run(args: string[]): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
  const listening = new Promise<{ port: number; line: Record<string, unknown> }>((resolve, reject) => {
    let buffer = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          if (line['msg'] === 'mock model server listening' && typeof line['port'] === 'number') resolve({ port: line['port'], line });
        } catch {
          // not a log line
        }
      }
    });
    void exited.then(({ code, stderr: err }) => reject(new Error(`mock-llm exited with ${code} before listening:\n${err}`)));
  });
  listening.catch(() => undefined);
  return { child, listening, exited };
}

describe('the mock-llm process', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the script from --script behind --api-key, logs one listening line and stops on SIGTERM', async () => {
    const script = join(dir, 'rules.json');
    writeFileSync(script, JSON.stringify({ rules: [{ contains: 'ping', text: 'pong' }] }));
    const started = run(['--port', '0', '--script', script, '--api-key', 'k']);
    const { port, line } = await started.listening;
    assert.equal(line['component'], 'mock-llm');
    assert.equal(line['openaiBaseUrl'], `http://127.0.0.1:${port}/openai/v1`);
    const ask = (key: string) =>
      fetch(`http://127.0.0.1:${port}/openai/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'ping' }] }),
      });
    assert.equal((await ask('wrong')).status, 401);
    const body = (await (await ask('k')).json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0]?.message.content, 'pong');
    started.child.kill('SIGTERM');
    assert.equal((await started.exited).code, 0);
  });

  it('refuses a bad script file with the problem on stderr and exit code 1', async () => {
    const script = join(dir, 'bad.json');
    writeFileSync(script, JSON.stringify([{ faults: [{ kind: 'stream-cut' }] }]));
    const { code, stderr } = await run(['--script', script]).exited;
    assert.equal(code, 1);
    assert.match(stderr, /\[CAIRN-1101\] Invalid mock script:\n {2}rules\[0\]\.faults\[0\]\.afterChunks/);
  });

  it('refuses unknown flags with usage and exit code 2', async () => {
    const { code, stderr } = await run(['--nope']).exited;
    assert.equal(code, 2);
    assert.match(stderr, /usage: cairn-mock-llm/);
  });
});
