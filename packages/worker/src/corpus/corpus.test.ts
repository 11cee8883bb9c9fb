// Replays every recorded journal of the corpus (test-corpus/, one real run per primitive, recorded
// with `pnpm --filter @cairn/worker corpus:record`) against the current code with the public replay
// API, the way Temporal's replay tests do: each must replay without non-determinism and end as the
// run ended, with the same result. The changed version of each workflow must fail its replay.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { WorkflowDefinition } from '@cairn/sdk';
import { replayRun } from '../replay.js';
import { CORPUS_DIR, readCorpusRecord } from './corpus.js';
import { corpusCases } from './workflows.js';

/** The definition, with what its code returns kept for the assertion. */
function capturing(definition: WorkflowDefinition): { definition: WorkflowDefinition; returned: { value?: unknown } } {
  const returned: { value?: unknown } = {};
  return {
    returned,
    definition: {
      ...definition,
      run: async (ctx, input) => {
        const value: unknown = await definition.run(ctx, input);
        returned.value = value;
        return value;
      },
    },
  };
}

describe('recorded journal corpus', () => {
  it('holds one recorded run per primitive', () => {
    const files = readdirSync(CORPUS_DIR)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort();
    assert.deepEqual(files, corpusCases.map((c) => c.name).sort());
  });

  for (const c of corpusCases) {
    describe(c.name, () => {
      const record = readCorpusRecord(c.name);
      const key = Buffer.from(record.hmacKey, 'base64');

      it('replays on the current code without non-determinism, ending as the run did', async () => {
        const { definition, returned } = capturing(c.workflow);
        const result = await replayRun(record.document, definition, key);
        assert.equal(result.ok, true, JSON.stringify(result));
        // A run in flight replays up to its wait, where it would go on live.
        assert.equal(result.outcome, record.document.status === 'open' ? 'continues' : record.document.status);
        assert.equal(result.journalEntries, record.document.entries.filter((e) => e.kind !== 'now').length);
        if (result.outcome === 'failed') assert.equal(result.ok && result.error?.name, record.error?.name);
        else if (result.outcome === 'continues') assert.equal(result.ok && result.next?.kind, 'signal');
        else assert.deepEqual(returned.value, record.output);
      });

      it('fails to replay on the changed workflow', async () => {
        const result = await replayRun(record.document, c.changed, key);
        assert.equal(result.ok, false, JSON.stringify(result));
        assert.ok(result.outcome === 'non_determinism' || result.outcome === 'diverged');
      });
    });
  }
});
