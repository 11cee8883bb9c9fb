// Schedules: each schedule's expression, state and next tick, with pause, resume and trigger-now,
// and a backfill that first shows the ticks it would fire (the control plane computes them with
// the same cron evaluation as its ticker, in a dry run) before anything is fired.
import { useState, type SubmitEvent, type ReactNode } from 'react';
import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { Link, createLazyRoute } from '@tanstack/react-router';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { ErrorMessage, Loading, Time } from '../components/common.js';
import { projectRoute } from '../routes/root.js';

type Schedule = Schemas['Schedule'];
type Backfill = Schemas['Backfill'];

/** A datetime-local value (the browser's time zone) as ISO, or null when empty or invalid. */
const localToIso = (value: string): string | null => {
  if (value === '') return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
};

function BackfillPanel({ project, schedule, onClose }: { project: string; schedule: Schedule; onClose: () => void }): ReactNode {
  const queryClient = useQueryClient();
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [preview, setPreview] = useState<{ range: { from: string; to: string }; answer: Backfill } | null>(null);
  const call = (range: { from: string; to: string }, dryRun: boolean) =>
    unwrap(
      cp.POST('/v1/projects/{project}/schedules/{schedule}/backfill', {
        params: { path: { project, schedule: schedule.id } },
        body: { ...range, dryRun },
      }),
    );
  const previewing = useMutation({
    mutationFn: (range: { from: string; to: string }) => call(range, true),
    onSuccess: (answer, range) => setPreview({ range, answer }),
  });
  const firing = useMutation({
    mutationFn: (range: { from: string; to: string }) => call(range, false),
    onSuccess: () => {
      setPreview(null);
      void queryClient.invalidateQueries({ queryKey: ['schedules', project] });
    },
  });
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    const range = { from: localToIso(from), to: localToIso(to) };
    if (range.from === null || range.to === null) return;
    firing.reset();
    previewing.mutate({ from: range.from, to: range.to });
  };
  const toFire = preview?.answer.ticks.filter((t) => !t.alreadyFired).length ?? 0;
  const label = schedule.name ?? schedule.id;
  return (
    <section className="panel" aria-labelledby="backfill-heading">
      <h2 id="backfill-heading">Backfill {label}</h2>
      <p className="muted">
        Fires one run for each tick of <code>{schedule.cron}</code> ({schedule.timeZone}) from the start time up to, not including, the end
        time. Ticks that already fired are not fired again. Times are in your browser's time zone.
      </p>
      <form className="filters" onSubmit={submit} aria-label="Backfill range">
        <div className="field">
          <label htmlFor="backfill-from">From</label>
          <input id="backfill-from" type="datetime-local" required value={from} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="backfill-to">To</label>
          <input id="backfill-to" type="datetime-local" required value={to} onChange={(e) => setTo(e.target.value)} />
        </div>
        <div className="actions">
          <button type="submit" disabled={previewing.isPending}>
            Preview ticks
          </button>
          <button type="button" className="secondary" onClick={onClose}>
            Close
          </button>
        </div>
      </form>
      {previewing.error === null ? null : <ErrorMessage error={previewing.error} title="The backfill cannot be previewed" />}
      {preview === null ? null : (
        <div aria-live="polite">
          <p role="status">
            {preview.answer.ticks.length === 0
              ? 'No tick falls in this range: nothing would fire.'
              : `${preview.answer.ticks.length} tick${preview.answer.ticks.length === 1 ? '' : 's'} in this range: ${toFire} would fire, ${
                  preview.answer.alreadyFired
                } already fired.`}
          </p>
          {preview.answer.ticks.length === 0 ? null : (
            <div className="scroller short" tabIndex={0} role="region" aria-label="Ticks, scrollable">
              <table aria-label="Ticks the backfill would fire">
                <thead>
                  <tr>
                    <th scope="col">Tick</th>
                    <th scope="col">Backfill</th>
                  </tr>
                </thead>
                <tbody>
                  {preview.answer.ticks.map((t) => (
                    <tr key={t.tickAt}>
                      <td>
                        <Time at={t.tickAt} />
                      </td>
                      <td>{t.alreadyFired ? 'already fired, skipped' : 'fires a run'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div className="actions">
            <button type="button" disabled={toFire === 0 || firing.isPending} onClick={() => firing.mutate(preview.range)}>
              Fire {toFire} run{toFire === 1 ? '' : 's'}
            </button>
          </div>
        </div>
      )}
      {firing.error === null ? null : <ErrorMessage error={firing.error} title="The backfill failed" />}
      {firing.data === undefined ? null : (
        <p role="status" className="notice">
          Backfill done: {firing.data.started} run{firing.data.started === 1 ? '' : 's'} started
          {firing.data.alreadyFired > 0
            ? `, ${firing.data.alreadyFired} tick${firing.data.alreadyFired === 1 ? '' : 's'} already fired`
            : ''}
          .
        </p>
      )}
    </section>
  );
}

function SchedulesPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const queryClient = useQueryClient();
  const [backfilling, setBackfilling] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<ReactNode>(null);
  const schedules = useInfiniteQuery({
    queryKey: ['schedules', project],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam, signal }) =>
      unwrap(
        cp.GET('/v1/projects/{project}/schedules', {
          params: { path: { project }, query: { limit: '100', ...(pageParam === undefined ? {} : { cursor: pageParam }) } },
          signal,
        }),
      ),
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const act = useMutation({
    mutationFn: async ({ schedule, action }: { schedule: Schedule; action: 'pause' | 'resume' | 'trigger' }): Promise<ReactNode> => {
      const path = { params: { path: { project, schedule: schedule.id } } };
      const label = schedule.name ?? schedule.id;
      if (action === 'pause') {
        await unwrap(cp.POST('/v1/projects/{project}/schedules/{schedule}/pause', path));
        return `Schedule ${label} is paused: no tick fires until it is resumed.`;
      }
      if (action === 'resume') {
        await unwrap(cp.POST('/v1/projects/{project}/schedules/{schedule}/resume', path));
        return `Schedule ${label} is running again from its next tick.`;
      }
      const { firing } = await unwrap(cp.POST('/v1/projects/{project}/schedules/{schedule}/trigger', { ...path, body: {} }));
      return firing.runId === null ? (
        `Schedule ${label} was triggered, but no run started: ${firing.outcome.replaceAll('_', ' ')} (overlap policy ${schedule.overlapPolicy}).`
      ) : (
        <>
          Schedule {label} was triggered: run{' '}
          <Link to="/p/$project/runs/$runId" params={{ project, runId: firing.runId }} className="mono">
            {firing.runId}
          </Link>{' '}
          started.
        </>
      );
    },
    onMutate: () => setOutcome(null),
    onSuccess: (message) => {
      setOutcome(message);
      void queryClient.invalidateQueries({ queryKey: ['schedules', project] });
    },
  });
  const rows = schedules.data?.pages.flatMap((p) => p.schedules) ?? [];
  const selected = rows.find((s) => s.id === backfilling);
  return (
    <>
      <h1>Schedules</h1>
      {schedules.isPending ? <Loading what="schedules" /> : null}
      {schedules.error === null ? null : <ErrorMessage error={schedules.error} title="Schedules could not be listed" />}
      {act.error === null ? null : <ErrorMessage error={act.error} title="The action failed" />}
      {outcome === null ? null : (
        <p role="status" className="notice">
          {outcome}
        </p>
      )}
      {schedules.isSuccess && rows.length === 0 ? (
        <p>
          This project has no schedule. Create one with <code>cairn schedules create</code>.
        </p>
      ) : null}
      {rows.length === 0 ? null : (
        <table aria-label="Schedules">
          <thead>
            <tr>
              <th scope="col">Schedule</th>
              <th scope="col">Workflow</th>
              <th scope="col">When</th>
              <th scope="col">State</th>
              <th scope="col">Next tick</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => {
              const label = s.name ?? s.id;
              return (
                <tr key={s.id}>
                  <th scope="row" className={s.name === null ? 'mono' : undefined}>
                    {label}
                  </th>
                  <td>
                    <Link to="/p/$project/runs" params={{ project }} search={{ scheduleId: s.id }}>
                      {s.workflowName}
                    </Link>
                    <span className="muted">@{s.workflowVersion ?? 'newest'}</span>
                  </td>
                  <td>
                    <code>{s.cron}</code> <span className="muted">{s.timeZone}</span>
                  </td>
                  <td>
                    <span className={`badge ${s.paused ? 'status-suspended' : 'status-completed'}`}>{s.paused ? 'paused' : 'active'}</span>
                  </td>
                  <td>{s.paused ? <span className="muted">paused</span> : <Time at={s.nextTickAt} />}</td>
                  <td className="actions">
                    {s.paused ? (
                      <button
                        type="button"
                        className="secondary"
                        aria-label={`Resume ${label}`}
                        disabled={act.isPending}
                        onClick={() => act.mutate({ schedule: s, action: 'resume' })}
                      >
                        Resume
                      </button>
                    ) : (
                      <button
                        type="button"
                        className="secondary"
                        aria-label={`Pause ${label}`}
                        disabled={act.isPending}
                        onClick={() => act.mutate({ schedule: s, action: 'pause' })}
                      >
                        Pause
                      </button>
                    )}
                    <button
                      type="button"
                      className="secondary"
                      aria-label={`Trigger now: ${label}`}
                      disabled={act.isPending}
                      onClick={() => act.mutate({ schedule: s, action: 'trigger' })}
                    >
                      Trigger now
                    </button>
                    <button type="button" className="secondary" aria-label={`Backfill ${label}`} onClick={() => setBackfilling(s.id)}>
                      Backfill…
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {schedules.hasNextPage ? (
        <p>
          <button
            type="button"
            className="secondary"
            disabled={schedules.isFetchingNextPage}
            onClick={() => void schedules.fetchNextPage()}
          >
            Load more schedules
          </button>
        </p>
      ) : null}
      {selected === undefined ? null : (
        <BackfillPanel key={selected.id} project={project} schedule={selected} onClose={() => setBackfilling(null)} />
      )}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/schedules')({ component: SchedulesPage });
