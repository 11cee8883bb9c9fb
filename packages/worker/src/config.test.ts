import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hasher, KeyRing } from '@cairn/payload-store';
import { loadWorkerConfig } from './config.js';

const good = {
  CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:7233',
  CAIRN_DATA_PLANE_ID: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
  CAIRN_DP_CREDENTIAL: 'dp-secret-token',
  CAIRN_DP_DATABASE_URL: 'postgres://cairn@127.0.0.1:5432/cairn_dp',
  CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec(),
  CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
};

describe('worker configuration', () => {
  it('reads the environment with defaults', () => {
    const config = loadWorkerConfig(good);
    assert.equal(config.CAIRN_WORKER_SLOTS, 10);
    assert.equal(config.CAIRN_SUSPEND_THRESHOLD_MS, 5000);
    assert.equal(config.CAIRN_DRAIN_TIMEOUT_MS, 25_000);
    assert.equal(config.CAIRN_CP_TLS, false);
    assert.equal(config.CAIRN_LOG_LEVEL, 'info');
    assert.ok(Object.isFrozen(config));
    assert.equal(loadWorkerConfig({ ...good, CAIRN_WORKER_SLOTS: '3' }).CAIRN_WORKER_SLOTS, 3);
  });

  it('names every bad variable without echoing secret values', () => {
    const secretKey = 'not-a-key-but-maybe-a-secret';
    assert.throws(
      () =>
        loadWorkerConfig({
          ...good,
          CAIRN_CP_GRPC_ADDRESS: 'no-port',
          CAIRN_DATA_PLANE_ID: 'local',
          CAIRN_DP_CREDENTIAL: undefined,
          CAIRN_DP_ENCRYPTION_KEYS: secretKey,
          CAIRN_DP_HMAC_KEY: 'c2hvcnQ=',
          CAIRN_WORKER_SLOTS: 'many',
        }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /CAIRN-1001/);
        for (const name of [
          'CAIRN_CP_GRPC_ADDRESS',
          'CAIRN_DATA_PLANE_ID',
          'CAIRN_DP_CREDENTIAL',
          'CAIRN_DP_ENCRYPTION_KEYS',
          'CAIRN_DP_HMAC_KEY',
          'CAIRN_WORKER_SLOTS',
        ]) {
          assert.match(err.message, new RegExp(`${name}: `));
        }
        assert.doesNotMatch(err.message, /DATABASE_URL/);
        assert.ok(!err.message.includes(secretKey));
        return true;
      },
    );
  });
});
