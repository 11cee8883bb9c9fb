// The journal cursor: where each durable call sits in the journal (its slot), and the one place
// that compares a call with the entry recorded there and says whether to replay it or execute it.
import type { AsyncLocalStorage } from 'node:async_hooks';
import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import type { JournalEntry, JournalKind, JournalStatus, RunDigests } from '@cairn/payload-store';
import { NonDeterminismError, type DurableCall } from '@cairn/sdk';
import type { CallScope, Slot } from './basics.js';

/** What the journal says about a call at its slot: nothing yet (execute it), or the entry to replay, by status. */
export type Replay<S extends JournalStatus = JournalStatus> =
  { readonly status: 'new' } | { readonly [K in S]: { readonly status: K; readonly entry: JournalEntry & { readonly status: K } } }[S];

export const identityOf = (kind: JournalKind, name: string, keyDigest: string | undefined): string => `${kind}|${name}|${keyDigest ?? ''}`;

export function callOf(entry: JournalEntry): DurableCall {
  return { kind: entry.kind, name: entry.name, keyDigest: entry.keyDigest };
}

export class JournalCursor {
  readonly #runId: string;
  readonly #scope: AsyncLocalStorage<CallScope>;
  readonly #log: Logger;
  readonly #journal = new Map<number, JournalEntry>();
  /** Journal positions by call identity (kind, name, key digest), for calls made in a branch or while compensating. */
  readonly #byIdentity = new Map<string, number>();
  /** Positions this execution has handed out; a journal entry at any other is left over. */
  readonly #claimed = new Set<number>();
  #position = 0;
  /** The run's digest functions, set once the run is loaded (its workflow and digest version). */
  #digests: RunDigests | undefined;
  /** The first non-determinism found: the run fails with it. */
  nonDeterminism: NonDeterminismError | undefined;

  constructor(runId: string, scope: AsyncLocalStorage<CallScope>, log: Logger) {
    this.#runId = runId;
    this.#scope = scope;
    this.#log = log;
  }

  /** Takes the journal as loaded. */
  load(journal: readonly JournalEntry[]): void {
    for (const entry of journal) {
      this.#journal.set(entry.position, entry);
      if (entry.keyDigest !== undefined) this.#byIdentity.set(identityOf(entry.kind, entry.name, entry.keyDigest), entry.position);
    }
  }

  set digests(digests: RunDigests) {
    this.#digests = digests;
  }

  /** The run's digests: workflow code runs only after the run is loaded, which sets them. */
  get digests(): RunDigests {
    if (!this.#digests) throw new CairnError(ErrorCodes.INTERNAL, 'A durable call was made before the run was loaded.');
    return this.#digests;
  }

  /**
   * The journal place of a new durable call. On the workflow's main line it is the next position
   * in call order (the journal entry there, if any, must record the same call). A call made in a
   * `ctx.parallel` branch, or a compensation (`identity` given), is identified by where it is made
   * instead, because several branches make calls in completion order: its key digest is the HMAC
   * of that identity (and of `key`), which finds its journal entry on replay whatever the order;
   * a new one takes the next position no journal entry holds.
   */
  slot(kind: JournalKind, name: string, key: string | number | undefined, identity?: string): Slot {
    const branch = this.#scope.getStore()?.branch;
    const id = identity ?? (branch ? `${branch.path}#${branch.seq++}` : undefined);
    if (id === undefined) {
      const position = this.#position++;
      this.#claimed.add(position);
      return {
        position,
        keyDigest: key === undefined ? undefined : this.digests.step(String(key)),
        idempotencyKey: `${this.#runId}:${position}`,
      };
    }
    const keyDigest = this.digests.step(key === undefined ? `cairn:${id}` : `cairn:${id}:${String(key)}`);
    let position = this.#byIdentity.get(identityOf(kind, name, keyDigest));
    if (position === undefined || this.#claimed.has(position)) {
      while (this.#journal.has(this.#position) || this.#claimed.has(this.#position)) this.#position++;
      position = this.#position++;
    } else {
      this.#position = Math.max(this.#position, position + 1);
    }
    this.#claimed.add(position);
    return { position, keyDigest, idempotencyKey: `${this.#runId}:${id}` };
  }

  /**
   * The unclaimed journal entry of a call identified like a branch call (see `slot`), if there is
   * one, without claiming a position.
   */
  peek(kind: JournalKind, name: string, key: string | number | undefined, identity: string): JournalEntry | undefined {
    const keyDigest = this.digests.step(key === undefined ? `cairn:${identity}` : `cairn:${identity}:${String(key)}`);
    const position = this.#byIdentity.get(identityOf(kind, name, keyDigest));
    return position === undefined || this.#claimed.has(position) ? undefined : this.#journal.get(position);
  }

  /** Claims a journal entry that a checkpoint stands for: the replay skips it. */
  claimReplayed(position: number): void {
    this.#claimed.add(position);
    this.#position = Math.max(this.#position, position + 1);
  }

  /**
   * The one opening of every durable call: finds the journal entry at the call's slot, checks that
   * it records the same call (else non-determinism, thrown and kept for the run's failure), and
   * hands back what to do. A status the call kind does not accept (`accepts`) is a damaged journal.
   */
  replay<S extends JournalStatus>(slot: Pick<Slot, 'position'>, call: DurableCall, accepts: readonly S[], what: string): Replay<S> {
    const entry = this.#journal.get(slot.position);
    if (!entry) return { status: 'new' };
    this.expect(slot.position, entry, call);
    if (!(accepts as readonly JournalStatus[]).includes(entry.status)) {
      throw new CairnError(ErrorCodes.INTERNAL, `Journal entry ${slot.position} of ${what} has the unexpected status ${entry.status}.`);
    }
    return { status: entry.status, entry } as Replay<S>;
  }

  /** Checks that the journal entry at `position` records the same call, else non-determinism. */
  expect(position: number, entry: JournalEntry, call: DurableCall): void {
    if (entry.kind === call.kind && entry.name === call.name && (entry.keyDigest ?? undefined) === (call.keyDigest ?? undefined)) return;
    const error = new NonDeterminismError({ position, expected: callOf(entry), actual: call });
    this.nonDeterminism ??= error;
    this.#log.error({ err: error }, 'non-determinism');
    throw error;
  }

  /** A journal entry no call of this execution claimed: the code now makes fewer calls than the run did. */
  leftover(): JournalEntry | undefined {
    return [...this.#journal.values()].find((e) => !this.#claimed.has(e.position));
  }

  /** The entry at a position (for tests and diagnostics). */
  entry(position: number): JournalEntry | undefined {
    return this.#journal.get(position);
  }
}
