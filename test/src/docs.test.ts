// The references a user reads must match what the tools print.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { workerEnvironment, type Endpoints } from '@cairn/dev';

const workerReadme = readFileSync(new URL('../../packages/worker/README.md', import.meta.url), 'utf8');

describe('the worker environment reference', () => {
  it('explains every variable `cairn dev env` prints', () => {
    const endpoints: Endpoints = {
      project: 'default',
      dataPlaneId: 'dp',
      controlPlane: { httpUrl: 'http://127.0.0.1:7280', grpcAddress: '127.0.0.1:7233' },
      gatewayUrl: 'http://127.0.0.1:7281',
      modelServerUrl: 'http://127.0.0.1:7282',
      postgres: { host: '127.0.0.1', port: 7432 },
      pid: 1,
      startedAt: '',
    };
    const printed = workerEnvironment(endpoints, {
      CAIRN_DATA_PLANE_ID: 'dp',
      CAIRN_DP_CREDENTIAL: 'c',
      CAIRN_DP_DATABASE_URL: 'postgres://u:p@127.0.0.1:7432/cairn_dp',
      CAIRN_DP_ENCRYPTION_KEYS: 'k1:a',
      CAIRN_DP_HMAC_KEY: 'h',
      CAIRN_GATEWAY_TOKENS: 'cgt_x',
    });
    const missing = Object.keys(printed).filter((name) => !workerReadme.includes(`\`${name}\``));
    assert.deepEqual(missing, [], 'printed by cairn dev env but not explained in packages/worker/README.md');
  });
});

describe('what the references say about cancelling a run that ran and is suspended', () => {
  // The control plane dispatches such a run once more with the cancellation requested, so a worker
  // replays it and runs its compensations (test/src/e2e/saga.test.ts); no reference may say it ends
  // at once or is cancelled without a dispatch.
  const references = {
    'packages/sdk/README.md': readFileSync(new URL('../../packages/sdk/README.md', import.meta.url), 'utf8'),
    'packages/client/src/client.ts': readFileSync(new URL('../../packages/client/src/client.ts', import.meta.url), 'utf8'),
    'apps/gateway/README.md': readFileSync(new URL('../../apps/gateway/README.md', import.meta.url), 'utf8'),
    'apps/control-plane/README.md': readFileSync(new URL('../../apps/control-plane/README.md', import.meta.url), 'utf8'),
  };

  it('says it is dispatched again so that its compensations run', () => {
    const unflowed = Object.fromEntries(
      Object.entries(references).map(([file, text]) => [file, text.replace(/\n\s*(?:\* )?/g, ' ').replace(/\s+/g, ' ')]),
    );
    const wrong = Object.entries(unflowed)
      .filter(([, text]) => /(?:queued or suspended|suspended or queued) (?:one|run) (?:ends|is cancelled) at once/i.test(text))
      .map(([file]) => file);
    assert.deepEqual(wrong, [], 'these say a suspended run is cancelled at once, without running its compensations');
    assert.match(
      unflowed['packages/sdk/README.md']!,
      /cancelled while suspended \(or queued again after it ran\) is dispatched with the cancellation requested, replayed, and compensated/,
    );
    assert.match(
      unflowed['packages/client/src/client.ts']!,
      /suspended \(or queued again\) is dispatched once more with the cancellation requested/,
    );
  });
});
