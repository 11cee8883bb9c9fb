// The recorded-journal corpus: where its files are and what each holds.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { JournalDocument } from '../replay.js';

/** `packages/worker/test-corpus/`, beside `src/`. */
export const CORPUS_DIR = fileURLToPath(new URL('../../test-corpus/', import.meta.url));

/** One recorded run: its journal as `@cairn/worker/replay` takes it, and how the run ended. */
export interface CorpusRecord {
  /** The case's name (see `corpusCases`). */
  readonly case: string;
  readonly recordedAt: string;
  /** The test HMAC key the run's keys were digested with (base64); the replay needs it. */
  readonly hmacKey: string;
  /** What the run returned (completed runs; absent for a run recorded in flight). */
  readonly output?: unknown;
  /** The run's stored error (failed runs). */
  readonly error?: { readonly name: string; readonly message: string };
  readonly document: JournalDocument;
}

export function readCorpusRecord(name: string): CorpusRecord {
  return JSON.parse(readFileSync(`${CORPUS_DIR}${name}.json`, 'utf8')) as CorpusRecord;
}
