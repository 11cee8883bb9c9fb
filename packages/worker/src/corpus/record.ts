// Records the replay corpus: runs each corpus workflow once with the real engine against a real
// payload store (embedded Postgres, or CAIRN_CORPUS_POSTGRES), scripted models standing in for
// providers, and writes each run's decrypted journal to test-corpus/<case>.json.
//   pnpm --filter @cairn/worker corpus:record [case…]
// Re-record only when a change to the journal format is intended: the corpus test replays these
// files against the current code, so they are what runs in flight look like.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { journalDocument } from '../replay-checks.js';
import { RunFailedError, TestEnvironment } from '../testing/test-environment.js';
import { CORPUS_DIR, type CorpusRecord } from './corpus.js';
import { corpusCases, corpusWorkflows } from './workflows.js';

const only = process.argv.slice(2);
const cases = corpusCases.filter((c) => only.length === 0 || only.includes(c.name));
const hmacKey = randomBytes(32);
const env = await TestEnvironment.start({
  workflows: corpusWorkflows,
  hmacKey,
  startTime: new Date('2030-01-01T09:00:00Z'),
  ...(process.env['CAIRN_CORPUS_POSTGRES'] ? { postgres: process.env['CAIRN_CORPUS_POSTGRES'] } : {}),
});
try {
  mkdirSync(CORPUS_DIR, { recursive: true });
  for (const c of cases) {
    const runId = await env.start(c.workflow, c.input);
    for (const event of c.events ?? []) {
      if ('signal' in event) await env.signal(runId, event.signal, event.body);
      else await env.approve(runId, event.approval, event.answer, event.key === undefined ? {} : { key: event.key });
    }
    let ending: Pick<CorpusRecord, 'output' | 'error'> = {};
    if (c.inFlight) {
      // Until it suspends on its wait (the virtual clock does not move while nothing waits on a result).
      while (env.status(runId) !== 'suspended') await new Promise((resolve) => setTimeout(resolve, 10));
    } else {
      try {
        ending = { output: await env.result(runId) };
      } catch (err) {
        if (!(err instanceof RunFailedError)) throw err;
        ending = { error: { name: err.errorName, message: err.errorMessage } };
      }
    }
    const document = await journalDocument(env.store, runId);
    if (!document) throw new Error(`run ${runId} of case ${c.name} is not in the payload store`);
    const record: CorpusRecord = {
      case: c.name,
      recordedAt: new Date().toISOString(),
      hmacKey: hmacKey.toString('base64'),
      ...ending,
      document,
    };
    writeFileSync(`${CORPUS_DIR}${c.name}.json`, JSON.stringify(record, null, 2) + '\n');
    console.log(`${c.name}: ${document.status}, ${document.entries.length} journal entries`);
  }
} finally {
  await env.stop();
}
