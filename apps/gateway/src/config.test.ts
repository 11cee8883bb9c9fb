import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CairnError } from '@cairn/common';
import { Hasher, KeyRing } from '@cairn/payload-store';
import { CredentialThrottle } from '@cairn/common';
import { TokenSet, parseGatewayToken, requireScope, type GatewayToken } from './auth.js';
import { GATEWAY_SECRETS, loadGatewayConfig } from './config.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ONE = 'cgt_Yb3qN8vR2kT6wP9xL4mZ7cJ1sD5fH0gA';
const TWO = 'cgt_Qw8eR4tY6uI2oP0aS3dF7gH1jK9lZ5xC';

const valid = (): Record<string, string> => ({
  CAIRN_CP_GRPC_ADDRESS: 'cp.example.com:7233',
  CAIRN_DP_CREDENTIAL: 'cdp_credential-value',
  CAIRN_DP_DATABASE_URL: 'postgres://dp:pw@127.0.0.1:5432/dp',
  CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec('k2'),
  CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
  CAIRN_GATEWAY_TOKENS: `${ONE}, ${TWO}:read+signal`,
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
  it('reads every key and secret from a file (*_FILE), refusing both at once and naming a bad file by its path only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-gw-secrets-'));
    try {
      const plain = valid();
      const fileEnv: Record<string, string> = { CAIRN_CP_GRPC_ADDRESS: plain.CAIRN_CP_GRPC_ADDRESS! };
      for (const name of GATEWAY_SECRETS) {
        if (plain[name] === undefined) continue;
        const path = join(dir, name.toLowerCase());
        // Kubernetes Secret files and `echo` leave a trailing newline: it is not part of the value.
        writeFileSync(path, `${plain[name]}\n`, { mode: 0o600 });
        fileEnv[`${name}_FILE`] = path;
      }
      const config = loadGatewayConfig(fileEnv);
      assert.equal(config.dpCredential, plain.CAIRN_DP_CREDENTIAL);
      assert.equal(config.databaseUrl, plain.CAIRN_DP_DATABASE_URL);
      assert.deepEqual(config.keys.keyIds, ['k2']);
      assert.equal(config.hasher.digest('x'), Hasher.parse(plain.CAIRN_DP_HMAC_KEY!).digest('x'));
      assert.equal(config.tokens.length, 2);
      // No secret is in the environment the process was given.
      for (const secret of GATEWAY_SECRETS.flatMap((n) => plain[n] ?? [])) assert.ok(!Object.values(fileEnv).includes(secret));

      const both = failure({ ...fileEnv, CAIRN_DP_HMAC_KEY: plain.CAIRN_DP_HMAC_KEY! });
      assert.match(both.message, /CAIRN_DP_HMAC_KEY, CAIRN_DP_HMAC_KEY_FILE: set one of them/);
      const missing = failure({ ...fileEnv, CAIRN_DP_ENCRYPTION_KEYS_FILE: join(dir, 'nope') });
      assert.match(missing.message, /CAIRN_DP_ENCRYPTION_KEYS_FILE: cannot read .*nope \(ENOENT\)/);
      writeFileSync(join(dir, 'short'), 'k1:c2hvcnQ=\n');
      const bad = failure({ ...fileEnv, CAIRN_DP_ENCRYPTION_KEYS_FILE: join(dir, 'short') });
      assert.match(bad.message, /CAIRN_DP_ENCRYPTION_KEYS \(read from CAIRN_DP_ENCRYPTION_KEYS_FILE\): .*must be 32 bytes/);
      assert.ok(!bad.message.includes('c2hvcnQ='));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts tracing only with an exporter configured, and refuses a sampler the SDK does not know', () => {
    assert.deepEqual(loadGatewayConfig(valid()).tracing, { enabled: false, endpoint: null });
    assert.deepEqual(loadGatewayConfig({ ...valid(), OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing, {
      enabled: true,
      endpoint: null,
    });
    assert.deepEqual(loadGatewayConfig({ ...valid(), CAIRN_DP_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }).tracing, {
      enabled: true,
      endpoint: 'http://collector:4318/v1/traces',
    });
    assert.equal(
      loadGatewayConfig({ ...valid(), OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing?.enabled,
      false,
    );
    const bad = failure({ ...valid(), OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_SAMPLER: 'sometimes' });
    assert.match(bad.message, /OTEL_TRACES_SAMPLER: expected one of always_on, always_off, traceidratio/);
  });

  it('applies the defaults', () => {
    const config = loadGatewayConfig(valid());
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.port, 8081);
    assert.equal(config.maxPayloadBytes, 1_048_576);
    assert.equal(config.cpTimeoutMs, 10_000);
    assert.equal(config.cpTls.enabled, false);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(config.tokens, [
      { token: ONE, scopes: ['read', 'start', 'signal', 'admin'] },
      { token: TWO, scopes: ['read', 'signal'] },
    ]);
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

describe('gateway tokens', () => {
  const alpha: GatewayToken = { token: ONE, scopes: ['read', 'start', 'signal', 'admin'] };
  const beta: GatewayToken = { token: TWO, scopes: ['read'] };

  it('accepts any configured token and answers its scopes', () => {
    const tokens = new TokenSet([alpha, beta]);
    assert.deepEqual(tokens.authenticate(`Bearer ${ONE}`), ['read', 'start', 'signal', 'admin']);
    assert.deepEqual(tokens.authenticate(`bearer ${TWO}`), ['read']);
  });

  it('refuses a missing, malformed or unknown token with CAIRN-1104', () => {
    const tokens = new TokenSet([alpha, beta]);
    for (const header of [undefined, '', ONE, 'Basic YWxwaGE=', 'Bearer', `Bearer ${ONE.slice(0, 10)}`, `Bearer ${ONE}-x`]) {
      assert.throws(
        () => tokens.check(header),
        (err: unknown) => err instanceof CairnError && err.code === 'CAIRN-1104',
      );
    }
  });

  it('throttles failed tokens per address (CAIRN-1142) but never an accepted token', () => {
    const tokens = new TokenSet([alpha], new CredentialThrottle({ perSource: { burst: 3, refillMs: 60_000 } }));
    tokens.check(`Bearer ${ONE}`, '192.0.2.1');
    for (let i = 0; i < 3; i++) assert.throws(() => tokens.check(`Bearer cgt_guess-number-${i}`, '192.0.2.1'), /CAIRN-1104/);
    assert.throws(
      () => tokens.check('Bearer cgt_guess-number-4', '192.0.2.1'),
      (err: unknown) => err instanceof CairnError && err.code === 'CAIRN-1142' && err.details['retryAfterSeconds'] === 60,
    );
    assert.deepEqual(tokens.authenticate(`Bearer ${ONE}`, '192.0.2.1'), alpha.scopes);
    assert.throws(() => tokens.check('Bearer cgt_guess-number-5', '192.0.2.2'), /CAIRN-1104/, 'another address is checked');
  });

  it('parses scopes: none is every scope, admin implies the others, unknown names are refused', () => {
    assert.deepEqual(parseGatewayToken(ONE), alpha);
    assert.deepEqual(parseGatewayToken(`${ONE}:start+read`), { token: ONE, scopes: ['read', 'start'] });
    assert.deepEqual(parseGatewayToken(`${ONE}:admin`), alpha);
    const typo = parseGatewayToken(`${ONE}:raed`);
    assert.ok('problem' in typo);
    assert.match(typo.problem, /unknown scope "raed": scopes are read, start, signal, admin/);
    assert.ok('problem' in parseGatewayToken(`${ONE}:`));
  });

  it('refuses weak tokens at start with CAIRN-1143, naming the token by position, never quoting it', () => {
    const err = failure({ ...valid(), CAIRN_GATEWAY_TOKENS: `${ONE},x,cgt_short:read` });
    assert.match(err.message, /CAIRN_GATEWAY_TOKENS: token 2 of 3: is too weak \(CAIRN-1143\): the token is 1 characters long/);
    assert.match(err.message, /CAIRN_GATEWAY_TOKENS: token 3 of 3: is too weak \(CAIRN-1143\)/);
    assert.ok(!err.message.includes('cgt_short'));
    assert.ok(!err.message.includes(ONE));
    assert.match(failure({ ...valid(), CAIRN_GATEWAY_TOKENS: `${ONE},${ONE}:read` }).message, /token 2 of 2: listed twice/);
  });

  it('names the scope a route needs (CAIRN-1144)', () => {
    assert.throws(
      () => requireScope(['read', 'start'], 'admin', 'POST /v1/runs/:id/cancel'),
      (err: unknown) =>
        err instanceof CairnError &&
        err.code === 'CAIRN-1144' &&
        /has the scopes read, start; POST \/v1\/runs\/:id\/cancel needs the scope admin/.test(err.message),
    );
    requireScope(['read', 'admin'], 'admin', 'POST /v1/payloads');
  });
});
