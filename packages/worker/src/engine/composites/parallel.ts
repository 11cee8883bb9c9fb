// `ctx.parallel`: fan-out over items, each in a branch scope whose calls the journal cursor
// matches by identity, whatever order the branches finish in.
import { toError } from '../../errors.js';
import type { Run } from '../run.js';

/**
 * `ctx.parallel`: a slot scheduler. Items start in index order, at most `concurrency` at a time;
 * each runs in a branch scope (see `JournalCursor.slot`), so its calls find their journal entries by
 * identity whatever order the branches finish in. New items start one event-loop turn after a
 * completion, so every result already available (on a replay: all of them) is seen first; after
 * a failure none starts. Rejects with the lowest-index failure once nothing is running.
 */
export function fanOut<T, R>(
  run: Run,
  path: string,
  items: readonly T[],
  fn: (item: T, index: number) => R | Promise<R>,
  concurrency: number,
): Promise<Awaited<R>[]> {
  return new Promise<Awaited<R>[]>((resolve, reject) => {
    const results = new Array<Awaited<R>>(items.length);
    const errors = new Map<number, unknown>();
    let next = 0;
    let running = 0;
    let deferred = false;
    const start = (): void => {
      while (errors.size === 0 && running < concurrency && next < items.length) {
        const index = next++;
        running++;
        let promise: Promise<Awaited<R>>;
        try {
          promise = Promise.resolve(run.scope.run({ branch: { path: `${path}.${index}`, seq: 0 } }, () => fn(items[index] as T, index)));
        } catch (err) {
          promise = Promise.reject(toError(err));
        }
        promise
          .then(
            (value) => void (results[index] = value),
            (err: unknown) => void errors.set(index, err),
          )
          .finally(() => {
            running--;
            later();
          })
          .catch((err: unknown) => run.abandon(err));
      }
      if (running > 0 || deferred) return;
      if (errors.size > 0) reject(toError(errors.get(Math.min(...errors.keys()))));
      else resolve(results);
    };
    const later = (): void => {
      if (deferred) return;
      deferred = true;
      // Counted as progress, so the run does not suspend between a completion and the next start.
      const release = run.suspension.hold();
      setImmediate(() => {
        deferred = false;
        release();
        if (run.halt) return;
        start();
        run.suspension.scheduleIdleCheck();
      });
    };
    start();
  });
}
