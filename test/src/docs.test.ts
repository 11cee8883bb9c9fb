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
