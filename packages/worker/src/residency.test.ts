import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Hasher } from '@cairn/payload-store';
import { loadWorkerConfig } from './config.js';
import { KeyRing } from '@cairn/payload-store';
import { ModelNames, parseModelList } from './residency.js';

describe('model names that cross', () => {
  const names = new ModelNames(
    parseModelList('mistral.chat/mistral-large-latest, fireworks.chat/accounts/f/models/llama'),
    new Hasher(randomBytes(32)),
  );

  it('lets listed provider/model pairs cross as they are', () => {
    assert.deepEqual(names.crossing('mistral.chat', 'mistral-large-latest'), { provider: 'mistral.chat', model: 'mistral-large-latest' });
    assert.deepEqual(names.crossing('fireworks.chat', 'accounts/f/models/llama'), {
      provider: 'fireworks.chat',
      model: 'accounts/f/models/llama',
    });
    assert.deepEqual(names.crossing('', ''), { provider: '', model: '' }, 'not a model call');
  });

  it('sends anything else as unlisted and a keyed digest, stable per pair', () => {
    const email = names.crossing('mock.chat', 'jane.doe@example.com');
    assert.equal(email.provider, 'unlisted');
    assert.match(email.model, /^unlisted\.[0-9a-f]{16}$/);
    assert.deepEqual(names.crossing('mock.chat', 'jane.doe@example.com'), email);
    assert.notEqual(names.crossing('mock.chat', 'john@example.com').model, email.model);
    assert.notEqual(names.crossing('mistral.chat', 'jane.doe@example.com').model, email.model, 'the provider is part of the pair');
    // Another data plane's key gives another digest.
    const other = new ModelNames([], new Hasher(randomBytes(32)));
    assert.notEqual(other.crossing('mock.chat', 'jane.doe@example.com').model, email.model);
  });

  it('refuses a malformed CAIRN_WORKER_MODELS at start, naming the variable and the entry, never echoing it', () => {
    assert.throws(
      () => parseModelList('mistral.chat/mistral-large-latest,Jane Doe'),
      (err: Error) => /CAIRN_WORKER_MODELS: entry 2 of 2 is not provider\/model/.test(err.message) && !err.message.includes('Jane'),
    );
    const env = {
      CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:7233',
      CAIRN_DATA_PLANE_ID: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
      CAIRN_DP_CREDENTIAL: 'dp-secret-token',
      CAIRN_DP_DATABASE_URL: 'postgres://cairn@127.0.0.1:5432/cairn_dp',
      CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec(),
      CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
    };
    assert.throws(() => loadWorkerConfig({ ...env, CAIRN_WORKER_MODELS: '/nothing' }), /CAIRN_WORKER_MODELS/);
    assert.equal(
      loadWorkerConfig({ ...env, CAIRN_WORKER_MODELS: 'openai.chat/gpt-4o-mini' }).CAIRN_WORKER_MODELS,
      'openai.chat/gpt-4o-mini',
    );
  });
});
