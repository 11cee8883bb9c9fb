export { KeyRing, Hasher, CURRENT_DIGEST_VERSION, type DigestPurpose, type DigestVersion, type RunDigests, type Sealed } from './crypto.js';
export {
  APPROVAL_DIGEST_LENGTH,
  APPROVAL_KEYED_NAME_MAX_LENGTH,
  APPROVAL_NAME_MAX_LENGTH,
  APPROVAL_SIGNAL_PREFIX,
  approvalSignalName,
  crossingWorkflowName,
  keyedSignalId,
  signalNameDigest,
  STRICT_NAME_PATTERN,
  strictNameDigest,
  type ResidencyMode,
} from './approvals.js';
export {
  FencedError,
  PayloadStore,
  REPLAY_CHECK_CHANNEL,
  type ReplayCheck,
  type ReplayCheckStatus,
  type ErrorInfo,
  type JournalEntry,
  type JournalEntryDocument,
  journalEntryDocument,
  type JournalKind,
  type JournalStatus,
  type JournalWrite,
  type OrphanCandidate,
  type PayloadStoreOptions,
  type StoredError,
  type StoredPayload,
  type StoredRun,
  type StoredRunStatus,
  type StoredTranscript,
  type TakenSignal,
  type UnnotifiedSignal,
} from './store.js';
export type { KeyCheckResult } from './key-checks.js';
export {
  MAX_STREAM_PLAINTEXT_BYTES,
  packStreamEvents,
  splitStreamEvents,
  unpackStreamEvents,
  type SequencedStreamEvent,
  type StreamEvent,
} from './stream.js';
export {
  SCHEMA_CHANNEL,
  versionDigest,
  type CatalogueSchema,
  type CatalogueVersion,
  type CatalogueWrite,
  type SchemaKind,
} from './catalogue.js';
export { PgListener, listenerMetrics, type ChannelHandlers, type ListenerState, type PgListenerOptions } from './listener.js';
export { keysStillNeeded, type KeyUsage, type ReencryptOptions, type ReencryptResult } from './reencrypt.js';
export {
  FileKeyWrapper,
  generateWrappedKeySpec,
  keyRingOf,
  keySourceOf,
  keyVariableProblems,
  loadKeyWrapper,
  parseWrappedKeys,
  unwrapKeyRing,
  type KeySource,
  type KeyWrapper,
  type WrappedKey,
} from './envelope.js';
export {
  JOURNAL_CHAIN_FORMAT,
  journalEntryHash,
  journalGenesis,
  plainDigest,
  type JournalChainContent,
  type JournalChainHead,
  type JournalChainProblem,
  type JournalChainProblemReason,
  type JournalChainReport,
} from '@cairn/common';
