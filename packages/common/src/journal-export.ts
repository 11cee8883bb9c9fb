// Signed exports of run journals for long-term archives: JSON Lines, signed with Ed25519, verified
// offline with the public key alone. The gateway signs with these functions and the CLI verifies
// with the same ones; docs/compliance.md states the format for other tools.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { CairnError, ErrorCodes } from './errors.js';
import { journalEntryHash, journalGenesis, plainDigest, type JournalChainContent, type JournalChainHead } from './journal-chain.js';

/** The `format` of an export; a verifier refuses any other. */
export const JOURNAL_EXPORT_FORMAT = 'cairn.journal-export.v1';

/** One journal entry as exported: recorded texts exactly as stored, so their digests can be recomputed. */
export interface ExportedEntry {
  readonly position: number;
  readonly kind: string;
  readonly name: string;
  readonly keyDigest: string | null;
  readonly status: string;
  readonly attempt: number;
  readonly outputSize: number;
  /** The recorded value's JSON text as stored (a signal wait's body); null when there is none. */
  readonly value: string | null;
  readonly error: string | null;
  readonly transcript: string | null;
  /** For a transcript deleted by retention: the SHA-256 of its plain text, which the chain covers. */
  readonly transcriptDigest: string | null;
  readonly dueAt: number | null;
  readonly startedAt: number;
  readonly endedAt: number | null;
}

/** One run as exported. */
export interface ExportedRun {
  readonly type: 'run';
  readonly runId: string;
  readonly workflow: string;
  readonly status: string;
  readonly createdAt: string;
  readonly endedAt: string | null;
  /** The input's JSON text as stored. */
  readonly input: string;
  /** The run's chain salt (hex) and how far the data plane sealed the chain. */
  readonly chain: { readonly salt: string; readonly entries: number; readonly head: string | null };
  /** The head the control plane recorded when the run was exported; null when it held none. */
  readonly controlPlaneHead: JournalChainHead | null;
  readonly entries: readonly ExportedEntry[];
}

interface ExportHeader {
  readonly type: 'header';
  readonly format: typeof JOURNAL_EXPORT_FORMAT;
  readonly createdAt: string;
  readonly keyId: string;
  readonly algorithm: 'Ed25519';
  /** The signing key's public half (base64url, a JWK's x), for a verifier that has not pinned one. */
  readonly publicKey: string;
  readonly runs: number;
}

interface ExportSignature {
  readonly type: 'signature';
  readonly format: typeof JOURNAL_EXPORT_FORMAT;
  /** SHA-256 (hex) of every byte before this line. */
  readonly sha256: string;
  /** How many lines it covers. */
  readonly lines: number;
  readonly keyId: string;
  readonly algorithm: 'Ed25519';
  /** Ed25519 over {@link exportSigningInput}, base64url. */
  readonly signature: string;
}

/** A key that signs exports. */
export interface ExportSigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function jcs(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new CairnError(ErrorCodes.INTERNAL, 'an export line is not plain JSON');
  return text;
}

/** The text an export's signature covers: the RFC 8785 canonical JSON of the signature line without `signature`. */
export function exportSigningInput(s: Omit<ExportSignature, 'signature' | 'type'>): string {
  return jcs({ format: s.format, sha256: s.sha256, lines: s.lines, keyId: s.keyId, algorithm: s.algorithm });
}

/** Writes a signed export of `runs`: a header line, one line per run, and a signature line. */
export function signJournalExport(runs: readonly ExportedRun[], key: ExportSigningKey, createdAt: Date = new Date()): string {
  const header: ExportHeader = {
    type: 'header',
    format: JOURNAL_EXPORT_FORMAT,
    createdAt: createdAt.toISOString(),
    keyId: key.keyId,
    algorithm: 'Ed25519',
    publicKey: key.publicKey.export({ format: 'jwk' }).x ?? '',
    runs: runs.length,
  };
  const body = [header, ...runs].map((line) => `${jcs(line)}\n`).join('');
  const unsigned = {
    format: JOURNAL_EXPORT_FORMAT,
    sha256: createHash('sha256').update(body, 'utf8').digest('hex'),
    lines: runs.length + 1,
    keyId: key.keyId,
    algorithm: 'Ed25519',
  } as const;
  const signature = sign(null, Buffer.from(exportSigningInput(unsigned), 'utf8'), key.privateKey).toString('base64url');
  return `${body}${jcs({ type: 'signature', ...unsigned, signature })}\n`;
}

/** What verifying one exported run found. */
export interface ExportedRunCheck {
  readonly runId: string;
  readonly entries: number;
  /** The chain recomputed from the exported entries reaches the recorded heads. */
  readonly ok: boolean;
  readonly detail: string;
}

/** What verifying an export found. */
export interface JournalExportVerification {
  readonly ok: boolean;
  readonly keyId: string | null;
  /** Whose key checked the signature: one the caller pinned, or the one the file carries. */
  readonly keySource: 'pinned' | 'embedded' | null;
  readonly createdAt: string | null;
  readonly runs: readonly ExportedRunCheck[];
  readonly problems: readonly string[];
}

const digestOf = (text: string | null): string | null => (text === null ? null : plainDigest(Buffer.from(text, 'utf8')));

function checkRun(run: ExportedRun): ExportedRunCheck {
  const fail = (detail: string): ExportedRunCheck => ({ runId: run.runId, entries: run.entries.length, ok: false, detail });
  let previous = journalGenesis(run.runId, Buffer.from(run.chain.salt, 'hex'));
  const hashAt: string[] = [];
  for (const e of run.entries.slice(0, run.chain.entries)) {
    if (e.position !== hashAt.length) return fail(`entry ${hashAt.length} is missing from the export`);
    const content: JournalChainContent = {
      position: e.position,
      kind: e.kind,
      name: e.name,
      keyDigest: e.keyDigest,
      status: e.status,
      attempt: e.attempt,
      outputSize: e.outputSize,
      value: digestOf(e.value),
      error: digestOf(e.error),
      transcript: e.transcript === null ? (e.transcriptDigest ?? null) : digestOf(e.transcript),
      dueAt: e.dueAt,
      startedAt: e.startedAt,
      endedAt: e.endedAt,
    };
    previous = journalEntryHash(previous, content);
    hashAt.push(previous);
  }
  const at = (n: number): string | null => (n === 0 ? null : (hashAt[n - 1] ?? 'missing'));
  if (at(run.chain.entries) !== run.chain.head) {
    return fail(`the exported entries do not give the chain head the data plane sealed over ${run.chain.entries} entries`);
  }
  const cp = run.controlPlaneHead;
  if (cp && cp.entries > 0 && at(cp.entries) !== cp.head) {
    return fail(`the exported entries do not give the head the control plane recorded over ${cp.entries} entries`);
  }
  return {
    runId: run.runId,
    entries: run.entries.length,
    ok: true,
    detail: cp ? `chain of ${run.chain.entries} entries matches the control plane's head` : `chain of ${run.chain.entries} entries`,
  };
}

/**
 * Verifies an export offline: the signature over every line before the last (with a pinned key
 * when `trusted` is given, else with the key the file carries), then each run's hash chain
 * recomputed from its exported entries against the heads recorded in it.
 */
export function verifyJournalExport(text: string, trusted: readonly KeyObject[] = []): JournalExportVerification {
  const problems: string[] = [];
  const bad = (problem: string): JournalExportVerification => ({
    ok: false,
    keyId: null,
    keySource: null,
    createdAt: null,
    runs: [],
    problems: [problem],
  });
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length < 2) return bad('not a journal export: expected a header line, run lines and a signature line');
  const parsed: unknown[] = [];
  for (const [i, line] of lines.entries()) {
    try {
      parsed.push(JSON.parse(line));
    } catch {
      return bad(`line ${i + 1} is not JSON: the file was cut or changed`);
    }
  }
  const header = parsed[0] as Partial<ExportHeader>;
  const last = parsed.at(-1) as Partial<ExportSignature>;
  if (header.type !== 'header' || header.format !== JOURNAL_EXPORT_FORMAT)
    return bad(`the first line is not a ${JOURNAL_EXPORT_FORMAT} header`);
  if (last.type !== 'signature' || typeof last.signature !== 'string' || typeof last.sha256 !== 'string') {
    return bad('the last line is not the signature line: the file was cut or lines were added after it');
  }
  const body = lines
    .slice(0, -1)
    .map((l) => `${l}\n`)
    .join('');
  const sha256 = createHash('sha256').update(body, 'utf8').digest('hex');
  if (sha256 !== last.sha256 || last.lines !== lines.length - 1) {
    problems.push('the lines before the signature are not the ones that were signed: a line was changed, added or removed');
  }
  let keys = trusted;
  let keySource: 'pinned' | 'embedded' = 'pinned';
  if (keys.length === 0) {
    keySource = 'embedded';
    try {
      keys = [createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: header.publicKey ?? '' }, format: 'jwk' })];
    } catch {
      return bad('the header carries no readable public key: pass the one you trust with --public-key');
    }
  }
  const input = Buffer.from(
    exportSigningInput({
      format: JOURNAL_EXPORT_FORMAT,
      sha256: last.sha256,
      lines: last.lines ?? 0,
      keyId: last.keyId ?? '',
      algorithm: 'Ed25519',
    }),
    'utf8',
  );
  const signed = keys.some((k) => {
    try {
      return verify(null, input, k, Buffer.from(last.signature ?? '', 'base64url'));
    } catch {
      return false;
    }
  });
  if (!signed) {
    problems.push(
      keySource === 'pinned'
        ? 'the signature does not verify with the trusted key: the export was changed after it was signed, or another key signed it'
        : 'the signature does not verify with the key the file carries: the export was changed after it was signed',
    );
  }
  const runs = (parsed.slice(1, -1) as ExportedRun[]).map(checkRun);
  for (const r of runs) if (!r.ok) problems.push(`run ${r.runId}: ${r.detail}`);
  if (runs.length !== header.runs) problems.push(`the header announces ${header.runs} runs but the export holds ${runs.length}`);
  return { ok: problems.length === 0, keyId: last.keyId ?? null, keySource, createdAt: header.createdAt ?? null, runs, problems };
}
