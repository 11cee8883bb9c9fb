// The run's durable calls as a waterfall on one time axis: a bar per attempt, the backoff before
// each retry hatched between them, waits (sleeps, signals, approvals, child runs) drawn as waits
// with what woke them. Each call is a button (Tab or the arrow keys move between them, Enter
// selects it for the step panel), and the same facts are in a table below for screen readers and
// for copying.
import { useRef, type KeyboardEvent, type ReactNode } from 'react';
import type { Run, Schemas } from '../../api/control-plane.js';
import { StatusBadge, Time, formatDuration } from '../../components/common.js';

export type TimelineCall = Schemas['TimelineCall'];
type Attempt = Schemas['Step'];

const ms = (iso: string | null | undefined): number | null => (iso === null || iso === undefined ? null : Date.parse(iso));

/** The time the axis spans: from the run's start to its end (or now, while it runs). */
export function axisOf(run: Run, calls: readonly TimelineCall[], now: number): { start: number; end: number } {
  let start = ms(run.startedAt) ?? ms(run.createdAt) ?? now;
  let end = ms(run.endedAt) ?? now;
  for (const call of calls) {
    for (const a of call.attempts) {
      const s = ms(a.startedAt);
      if (s !== null) start = Math.min(start, s);
      end = Math.max(end, ms(a.endedAt) ?? s ?? end, ms(a.dueAt) ?? end);
    }
  }
  return { start, end: Math.max(end, start + 1) };
}

/** The backoff waits of a call: from each failed attempt's end to the next attempt's start (or its due time). */
export function backoffsOf(call: TimelineCall, now: number): Array<{ from: number; to: number; before: number }> {
  const out: Array<{ from: number; to: number; before: number }> = [];
  const attempts = [...call.attempts].sort((a, b) => a.attempt - b.attempt);
  attempts.forEach((a, i) => {
    if (a.status !== 'retrying' && a.status !== 'failed') return;
    const from = ms(a.endedAt);
    if (from === null) return;
    const next = attempts[i + 1];
    const to = next === undefined ? (a.status === 'retrying' ? (ms(a.dueAt) ?? now) : null) : ms(next.startedAt);
    if (to !== null && to > from) out.push({ from, to, before: next?.attempt ?? a.attempt + 1 });
  });
  return out;
}

/** `approval review` for the signal `approval.review[.<key digest>]`, else `signal <name>`. */
const signalWords = (name: string): string =>
  name.startsWith('approval.') ? `approval ${name.slice('approval.'.length).replace(/\.[0-9a-f]{32}$/, '')}` : `signal ${name}`;

const isWait = (kind: string): boolean => kind === 'sleep' || kind === 'signal' || kind === 'child';

/** What the call waited for and what ended the wait, in words. */
export function waitOf(call: TimelineCall): string {
  const open = call.status === 'waiting' || call.status === 'running';
  const due = call.attempts.at(-1)?.dueAt ?? null;
  switch (call.kind) {
    case 'sleep':
      return open ? `sleeping${due === null ? '' : ` until ${new Date(due).toLocaleString()}`}` : 'woken by its timer';
    case 'signal': {
      const what = signalWords(call.name);
      if (open) return `waiting for ${what}${due === null ? '' : ` until ${new Date(due).toLocaleString()}`}`;
      return call.status === 'failed' ? `timed out waiting for ${what}` : `woken by ${what}`;
    }
    case 'child':
      return open ? 'waiting for the child run' : 'woken when the child run ended';
    default:
      return '';
  }
}

export function tokensOf(call: { inputTokens: number | null; outputTokens: number | null }): string {
  return call.inputTokens === null ? '' : `${call.inputTokens} in / ${call.outputTokens ?? 0} out`;
}

/** What a screen reader says after a call's position, kind and name. */
export function describeCall(call: TimelineCall, now: number): string {
  const parts = [call.copied ? `${call.status}, copied from the source run` : call.status, formatDuration(call.durationMs)];
  if (call.attemptCount > 1) parts.push(`${call.attemptCount} attempts`);
  const backoff = backoffsOf(call, now).reduce((sum, b) => sum + (b.to - b.from), 0);
  if (backoff > 0) parts.push(`${formatDuration(backoff)} of backoff`);
  const tokens = tokensOf(call);
  if (tokens !== '') parts.push(`${tokens} tokens`);
  const wait = waitOf(call);
  if (wait !== '') parts.push(wait);
  return parts.join(', ');
}

function RunState({ run }: { run: Run }): ReactNode {
  if (run.status === 'suspended') {
    const why =
      run.suspendReason === 'signal'
        ? `waiting for ${signalWords(run.waitingSignal ?? '')}`
        : run.suspendReason === 'sleep'
          ? 'sleeping'
          : run.suspendReason === 'retry_backoff'
            ? 'in backoff before a retry'
            : run.suspendReason === 'child'
              ? `waiting for child run ${run.waitingChild ?? ''}`
              : 'suspended';
    return (
      <p className="notice" data-testid="run-suspension">
        Suspended, {why}
        {run.wakeAt === null ? null : (
          <>
            {' '}
            (wakes at <Time at={run.wakeAt} />)
          </>
        )}
        .
      </p>
    );
  }
  if (run.wakeReason === null || run.wakeReason === 'start') return null;
  return (
    <p className="muted" data-testid="run-wake">
      Last woken by: {run.wakeReason === 'retry' ? 'a retry timer' : run.wakeReason}.
    </p>
  );
}

export function Timeline({
  run,
  calls,
  now,
  selected,
  onSelect,
}: {
  run: Run;
  calls: readonly TimelineCall[];
  now: number;
  selected: number | undefined;
  onSelect: (position: number) => void;
}): ReactNode {
  const list = useRef<HTMLOListElement>(null);
  const axis = axisOf(run, calls, now);
  const span = axis.end - axis.start;
  const pct = (t: number): number => Math.min(100, Math.max(0, ((t - axis.start) / span) * 100));
  const width = (from: number, to: number): number => Math.max(0.4, pct(to) - pct(from));
  const move = (event: KeyboardEvent<HTMLButtonElement>, index: number): void => {
    const step = event.key === 'ArrowDown' ? 1 : event.key === 'ArrowUp' ? -1 : 0;
    const target = event.key === 'Home' ? 0 : event.key === 'End' ? calls.length - 1 : index + step;
    if (step === 0 && event.key !== 'Home' && event.key !== 'End') return;
    event.preventDefault();
    list.current?.querySelectorAll<HTMLButtonElement>('button.gantt-row')[Math.max(0, Math.min(calls.length - 1, target))]?.focus();
  };
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <section aria-labelledby="timeline-heading">
      <h2 id="timeline-heading">Timeline</h2>
      <RunState run={run} />
      {calls.length === 0 ? (
        <p className="muted">No durable call yet.</p>
      ) : (
        <>
          <div className="gantt" role="group" aria-label="Durable calls on a time axis">
            <div className="gantt-axis" aria-hidden="true">
              <span className="gantt-label" />
              <span className="gantt-track">
                {ticks.map((f) => (
                  <span key={f} className="gantt-tick" style={{ left: `${f * 100}%` }}>
                    +{formatDuration(f * span)}
                  </span>
                ))}
              </span>
            </div>
            <p className="visually-hidden" id="gantt-help">
              Select a call to see its result, error or transcript. The arrow keys move between calls.
            </p>
            <ol ref={list} className="gantt-rows">
              {calls.map((call, index) => {
                const backoffs = backoffsOf(call, now);
                return (
                  <li key={call.position}>
                    <button
                      type="button"
                      className={`gantt-row${selected === call.position ? ' selected' : ''}`}
                      aria-pressed={selected === call.position}
                      aria-describedby="gantt-help"
                      onClick={() => onSelect(call.position)}
                      onKeyDown={(e) => move(e, index)}
                    >
                      <span className="gantt-label">
                        <span className="mono">{call.position}</span> <span className={`kind kind-${call.kind}`}>{call.kind}</span>{' '}
                        {call.name}
                        {call.copied ? (
                          <span className="badge copied" title="Copied from the source run's journal when the run was forked; not executed">
                            copied
                          </span>
                        ) : null}
                        <span className="visually-hidden">: {describeCall(call, now)}</span>
                      </span>
                      <span className="gantt-track" aria-hidden="true">
                        {call.attempts.map((a: Attempt) => {
                          const from = ms(a.startedAt);
                          if (from === null) return null;
                          const to = ms(a.endedAt) ?? (a.status === 'running' || a.status === 'waiting' ? now : from);
                          return (
                            <span
                              key={`a${a.attempt}`}
                              className={`gantt-bar bar-${isWait(call.kind) ? 'wait' : a.status}`}
                              style={{ left: `${pct(from)}%`, width: `${width(from, to)}%` }}
                              title={`attempt ${a.attempt}: ${a.status}, ${formatDuration(to - from)}${a.inputTokens === null ? '' : `, ${tokensOf(a)} tokens`}`}
                            />
                          );
                        })}
                        {backoffs.map((b) => (
                          <span
                            key={`b${b.before}`}
                            className="gantt-bar bar-backoff"
                            style={{ left: `${pct(b.from)}%`, width: `${width(b.from, b.to)}%` }}
                            title={`backoff before attempt ${b.before}: ${formatDuration(b.to - b.from)}`}
                          />
                        ))}
                      </span>
                      <span className="gantt-meta" aria-hidden="true">
                        {formatDuration(call.durationMs)}
                        {call.attemptCount > 1 ? ` · ${call.attemptCount} attempts` : ''}
                        {call.inputTokens === null ? '' : ` · ${call.inputTokens + (call.outputTokens ?? 0)} tok`}
                      </span>
                    </button>
                  </li>
                );
              })}
            </ol>
            <p className="gantt-legend muted" aria-hidden="true">
              <span className="gantt-bar bar-completed" /> attempt <span className="gantt-bar bar-retrying" /> failed attempt{' '}
              <span className="gantt-bar bar-backoff" /> backoff <span className="gantt-bar bar-wait" /> wait
            </p>
          </div>
          <table className="timeline-table">
            <caption className="visually-hidden">Durable calls, as a table</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Kind</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Started</th>
                <th scope="col">Duration</th>
                <th scope="col">Backoff</th>
                <th scope="col">Tokens</th>
                <th scope="col">Wait</th>
              </tr>
            </thead>
            <tbody>
              {calls.map((call) => {
                const backoff = backoffsOf(call, now).reduce((sum, b) => sum + (b.to - b.from), 0);
                const started = ms(call.startedAt);
                return (
                  <tr key={call.position}>
                    <td>{call.position}</td>
                    <td>{call.kind}</td>
                    <td>{call.name}</td>
                    <td>
                      <StatusBadge status={call.status} />
                    </td>
                    <td>{call.attemptCount}</td>
                    <td>{started === null ? '—' : `+${formatDuration(started - axis.start)}`}</td>
                    <td>{formatDuration(call.durationMs)}</td>
                    <td>{backoff > 0 ? formatDuration(backoff) : '—'}</td>
                    <td>{tokensOf(call) || '—'}</td>
                    <td>{waitOf(call) || '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
