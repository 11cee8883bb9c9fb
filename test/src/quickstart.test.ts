import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const devMain = fileURLToPath(new URL('../../apps/dev/dist/main.js', import.meta.url));
const cliMain = fileURLToPath(new URL('../../apps/cli/dist/main.js', import.meta.url));

function freshDir(): string {
  const dir = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), 'cairn-quickstart-'));
  // Embedded Postgres runs as the 'postgres' user when started as root: it must enter the folder.
  chmodSync(dir, 0o755);
  return dir;
}

describe('the Quick start', () => {
  it('`pnpm dev` brings up the whole stack from nothing and runs the example to completion', () => {
    const r = spawnSync(process.execPath, [devMain, '--exit', '--dir', freshDir()], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Cairn local stack is up/);
    assert.match(r.stdout, /control plane\s+http:\/\/127\.0\.0\.1:\d+/);
    assert.match(r.stdout, /gateway\s+http:\/\/127\.0\.0\.1:\d+/);
    // The console, signed in: the key and the gateway travel in the fragment, which no server sees.
    assert.match(
      r.stdout,
      /console\s+http:\/\/127\.0\.0\.1:\d+\/#key=[^&\s]+&gateway=http%3A%2F%2F127\.0\.0\.1%3A\d+&gatewayToken=[^&\s]+&dataPlane=[0-9a-f-]{36}\s/,
    );
    assert.match(r.stdout, /finished: completed .*"status":"refunded"/);
    assert.match(r.stdout, /issue-refund\s+completed/);
    assert.match(r.stdout, /curl -s -X POST \$GW\/v1\/runs/);
    // The agent example: model calls against the local model server, an approval, a refund.
    assert.match(r.stdout, /support agent[\s\S]*finished: completed .*"status":"refunded"/);
    assert.match(r.stdout, /#0 classify\s+completed\s+model mock-small\s+tokens in [1-9]\d* \/ out [1-9]\d*/);
    // The research agent: a tool-calling loop, each turn and tool call durable.
    assert.match(r.stdout, /research agent[\s\S]*finished: completed after 2 model turns, tools \["search"\]/);
    assert.match(r.stdout, /answer: Durable execution journals every step/);
  });

  it('`cairn dev` brings up the same stack', () => {
    const r = spawnSync(process.execPath, [cliMain, 'dev', '--exit', '--dir', freshDir()], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Cairn local stack is up/);
    assert.match(r.stdout, /console\s+http:\/\/127\.0\.0\.1:\d+\/#key=/);
    assert.match(r.stdout, /finished: completed .*"status":"refunded"/);
    assert.match(r.stdout, /research agent[\s\S]*finished: completed after 2 model turns/);
  });
});
