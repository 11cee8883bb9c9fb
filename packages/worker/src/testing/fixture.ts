// The setup the engine's integration tests share: a fresh database on a test Postgres, the payload
// store on it, the signal hub, the fake control plane, and a local OpenAI-compatible server reached
// through the real AI SDK provider.
import { randomBytes } from 'node:crypto';
import type { LanguageModel } from 'ai';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { testPostgres, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { SignalHub } from '../signals.js';
import { FakeControlPlane, logger } from './engine-harness.js';
import { OpenAIServer, openAICompatible } from './openai-server.js';

export interface EngineFixture {
  readonly server: PostgresServer;
  readonly store: PayloadStore;
  readonly signals: SignalHub;
  readonly hasher: Hasher;
  readonly cp: FakeControlPlane;
  readonly llm: OpenAIServer;
  /** A model of the local server, by model ID. */
  readonly model: (id: string) => LanguageModel;
  close(): Promise<void>;
}

/** Starts the shared engine-test setup on a Postgres of `kind`, in a new database named after `prefix`. */
export async function startEngineFixture(kind: 'embedded' | 'system', prefix: string): Promise<EngineFixture> {
  const server = await testPostgres(kind);
  const url = await server.createDatabase(uniqueDatabaseName(prefix));
  const store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]) });
  await store.migrate();
  const signals = new SignalHub(store, logger);
  const hasher = new Hasher(randomBytes(32));
  const cp = new FakeControlPlane(store, hasher, signals);
  const llm = await OpenAIServer.start();
  const provider = (await openAICompatible()).createOpenAICompatible({
    name: 'acme',
    baseURL: llm.baseURL,
    apiKey: 'test-key',
    includeUsage: true,
    supportsStructuredOutputs: true,
  });
  return {
    server,
    store,
    signals,
    hasher,
    cp,
    llm,
    model: (id) => provider.chatModel(id),
    async close() {
      await llm.close();
      await signals.close();
      await store.close();
      await server.stop();
    },
  };
}
