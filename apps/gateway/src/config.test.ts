import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CairnError } from '@cairn/common';
import { Hasher, KeyRing } from '@cairn/payload-store';
import { TokenSet } from './auth.js';
import { loadGatewayConfig } from './config.js';

const valid = (): Record<string, string> => ({
  CAIRN_CP_GRPC_ADDRESS: 'cp.example.com:7233',
  CAIRN_DP_CREDENTIAL: 'cdp_credential-value',
  CAIRN_DP_DATABASE_URL: 'postgres://dp:pw@127.0.0.1:5432/dp',
  CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec('k2'),
  CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
  CAIRN_GATEWAY_TOKENS: 'token-one, token-two',
});

function failure(env: Record<string, string>): CairnError {
  try {
    loadGatewayConfig(env);
  } catch (err) {
    assert.ok(err instanceof CairnError);
    return err;
  }
  assert.fail('expected the config to be refused');
}

describe('gateway config', () => {
  it('applies the defaults', () => {
    const config = loadGatewayConfig(valid());
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.port, 8081);
    assert.equal(config.maxPayloadBytes, 1_048_576);
    assert.equal(config.cpTimeoutMs, 10_000);
    assert.equal(config.cpTls.enabled, false);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(config.tokens, ['token-one', 'token-two']);
    assert.equal(config.keys.activeKeyId, 'k2');
    assert.match(config.hasher.digest('x'), /^[0-9a-f]{64}$/);
    assert.ok(Object.isFrozen(config));
  });

  it('names every bad variable and never echoes a value', () => {
    const secretKey = 'k1:' + Buffer.from('too-short-secret').toString('base64');
    const err = failure({
      ...valid(),
      CAIRN_GATEWAY_PORT: '99999',
      CAIRN_CP_GRPC_ADDRESS: 'no-port-here',
      CAIRN_DP_CREDENTIAL: '',
      CAIRN_DP_ENCRYPTION_KEYS: secretKey,
      CAIRN_DP_HMAC_KEY: Buffer.from('short-hmac-secret').toString('base64'),
      CAIRN_GATEWAY_TOKENS: ' , ',
      CAIRN_GATEWAY_MAX_PAYLOAD_BYTES: '0',
      CAIRN_CP_TIMEOUT_MS: 'soon',
    });
    assert.equal(err.code, 'CAIRN-1001');
    for (const name of [
      'CAIRN_GATEWAY_PORT',
      'CAIRN_CP_GRPC_ADDRESS',
      'CAIRN_DP_CREDENTIAL',
      'CAIRN_DP_ENCRYPTION_KEYS',
      'CAIRN_DP_HMAC_KEY',
      'CAIRN_GATEWAY_TOKENS',
      'CAIRN_GATEWAY_MAX_PAYLOAD_BYTES',
      'CAIRN_CP_TIMEOUT_MS',
    ]) {
      assert.match(err.message, new RegExp(`${name}:`), name);
    }
    for (const value of [secretKey.slice(3), 'short-hmac-secret', 'no-port-here', 'soon']) assert.ok(!err.message.includes(value), value);
  });

  it('requires the variables without defaults', () => {
    const err = failure({});
    for (const name of [
      'CAIRN_CP_GRPC_ADDRESS',
      'CAIRN_DP_CREDENTIAL',
      'CAIRN_DP_DATABASE_URL',
      'CAIRN_DP_ENCRYPTION_KEYS',
      'CAIRN_DP_HMAC_KEY',
      'CAIRN_GATEWAY_TOKENS',
    ]) {
      assert.match(err.message, new RegExp(`${name}: is required`), name);
    }
  });
});

describe('bearer tokens', () => {
  const tokens = new TokenSet(['alpha-token', 'beta-token']);

  it('accepts any configured token', () => {
    tokens.check('Bearer alpha-token');
    tokens.check('bearer beta-token');
  });

  it('refuses a missing, malformed or unknown token with CAIRN-1104', () => {
    for (const header of [undefined, '', 'alpha-token', 'Basic YWxwaGE=', 'Bearer', 'Bearer alpha', 'Bearer alpha-token-x']) {
      assert.throws(
        () => tokens.check(header),
        (err: unknown) => err instanceof CairnError && err.code === 'CAIRN-1104',
      );
    }
  });
});
