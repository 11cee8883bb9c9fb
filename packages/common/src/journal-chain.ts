// The hash chain over a run's journal: its formats, in one place, so that the sealer and the
// verifier cannot drift. docs/compliance.md states them for anyone who wants to recompute a chain
// with other tools (RFC 8785 canonical JSON, SHA-256).
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { CairnError, ErrorCodes } from './errors.js';

/** The format name that starts every run's chain. */
export const JOURNAL_CHAIN_FORMAT = 'cairn.journal.v1';

/** What the chain covers of one journal entry. Digests are SHA-256 (hex) of the plain text as stored. */
export interface JournalChainContent {
  readonly position: number;
  readonly kind: string;
  readonly name: string;
  readonly keyDigest: string | null;
  readonly status: string;
  readonly attempt: number;
  readonly outputSize: number;
  /** The recorded value (for a signal wait: the signal body), or null when the entry has none. */
  readonly value: string | null;
  /** The error of a failed entry, or null. */
  readonly error: string | null;
  /** A model call's transcript, or null. */
  readonly transcript: string | null;
  /** Milliseconds since the epoch. */
  readonly dueAt: number | null;
  readonly startedAt: number;
  readonly endedAt: number | null;
}

/** How far a run's chain reaches: the number of entries it covers and its hash after the last one. */
export interface JournalChainHead {
  readonly entries: number;
  /** 64 lowercase hex digits; null when the chain covers no entry yet. */
  readonly head: string | null;
}

/** SHA-256 (hex) of a value's plain text. */
export function plainDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function jcs(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new CairnError(ErrorCodes.INTERNAL, 'a journal chain input is not plain JSON');
  return text;
}

/**
 * The hash before a run's first entry: `hex(SHA-256(UTF-8(JCS({format, runId, salt}))))`, where
 * salt is the run's 32 random bytes (hex) kept only in the data plane.
 */
export function journalGenesis(runId: string, salt: Buffer): string {
  return createHash('sha256')
    .update(jcs({ format: JOURNAL_CHAIN_FORMAT, runId, salt: salt.toString('hex') }), 'utf8')
    .digest('hex');
}

/** `hash(n) = hex(SHA-256(UTF-8(hash(n-1) + JCS(content(n)))))`. */
export function journalEntryHash(previous: string, content: JournalChainContent): string {
  return createHash('sha256').update(previous, 'utf8').update(jcs(content), 'utf8').digest('hex');
}

/** Why a journal does not verify. */
export type JournalChainProblemReason =
  /** An entry's content no longer gives the hash sealed for it: it was changed after it was recorded. */
  | 'entry_changed'
  /** A sealed entry (or its recorded value, error, signal or transcript) cannot be opened: its stored bytes were altered. */
  | 'entry_unreadable'
  /** An entry the chain covered is gone: deleted from the middle or the end. */
  | 'entry_missing'
  /** The recomputed chain does not give the head the control plane recorded for the run. */
  | 'head_mismatch'
  /** The run has ended but the control plane holds no journal head for it. */
  | 'head_missing';

/** One thing a verification found wrong. */
export interface JournalChainProblem {
  /** The journal position it concerns; null when it concerns the run as a whole. */
  readonly position: number | null;
  readonly reason: JournalChainProblemReason;
  readonly detail: string;
}

/** What `verifyJournalChain` found. */
export interface JournalChainReport {
  readonly runId: string;
  /** True when nothing is wrong. */
  readonly ok: boolean;
  /** Journal entries stored for the run now. */
  readonly journalEntries: number;
  /** The chain recomputed from the stored entries (final entries in position order, without gaps). */
  readonly recomputed: JournalChainHead;
  /** How far the data plane recorded that it had sealed the chain. */
  readonly dataPlane: JournalChainHead;
  /** The head the control plane recorded for the run; null when it holds none. */
  readonly controlPlane: JournalChainHead | null;
  readonly problems: readonly JournalChainProblem[];
}
