export { KeyRing, Hasher, type Sealed } from './crypto.js';
export {
  FencedError,
  PayloadStore,
  type ErrorInfo,
  type JournalEntry,
  type JournalKind,
  type JournalStatus,
  type JournalWrite,
  type PayloadStoreOptions,
  type StoredError,
  type StoredRun,
  type StoredRunStatus,
  type TakenSignal,
} from './store.js';
