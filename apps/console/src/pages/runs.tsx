// Runs, newest first: filters in the address (so a filtered list can be shared), cursor pages
// fetched as the list scrolls (only the rows in view are rendered, so 100,000 runs scroll without
// loading them all), and live updates while the newest runs are in view: runs that arrive after
// the list opened are marked new.
import { memo, useEffect, useMemo, useRef, useState, type SubmitEvent, type ReactNode } from 'react';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { Link, getRouteApi } from '@tanstack/react-router';
import { useVirtualizer } from '@tanstack/react-virtual';
import { cp, unwrap, type Run, type RunStatus } from '../api/control-plane.js';
import { ErrorMessage, Loading, StatusBadge, Time, formatDuration } from '../components/common.js';
import { projectRoute } from '../routes/root.js';
import type { SearchDraft } from '../routes/pages-search.js';
import { RUN_STATUSES, validateRunsSearch, type RunsSearch } from '../routes/runs-search.js';

const route = getRouteApi('/p/$project/runs');

const PAGE = 100;
const ROW_HEIGHT = 41;
/**
 * Live updates poll the newest pages; past this many pages the list holds still while you read,
 * and back at the top it keeps only these pages and goes live again.
 */
const LIVE_PAGES = 2;

const duration = (run: Run): number | null => {
  if (run.startedAt === null) return null;
  const end = run.endedAt === null ? Date.now() : Date.parse(run.endedAt);
  return end - Date.parse(run.startedAt);
};

/** A datetime-local value (browser local time) as ISO, or undefined. */
const localToIso = (value: string): string | undefined => (value === '' ? undefined : new Date(value).toISOString());
const isoToLocal = (iso: string | undefined): string => {
  if (iso === undefined) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

const Filters = memo(function Filters({ search }: { search: RunsSearch }): ReactNode {
  const navigate = route.useNavigate();
  const [draft, setDraft] = useState<SearchDraft<RunsSearch>>(search);
  useEffect(() => setDraft(search), [search]);
  const apply = (event: SubmitEvent): void => {
    event.preventDefault();
    void navigate({ search: validateRunsSearch(draft as Record<string, unknown>) });
  };
  const toggle = (status: RunStatus): void => {
    const current = draft.status ?? [];
    const next = current.includes(status) ? current.filter((s) => s !== status) : [...current, status];
    setDraft({ ...draft, status: next });
  };
  const field = (key: 'workflow' | 'version' | 'scheduleId' | 'parentRunId', label: string): ReactNode => (
    <div className="field">
      <label htmlFor={`filter-${key}`}>{label}</label>
      <input id={`filter-${key}`} value={draft[key] ?? ''} onChange={(e) => setDraft({ ...draft, [key]: e.target.value })} />
    </div>
  );
  return (
    <form className="filters" onSubmit={apply} aria-label="Filter runs">
      <fieldset className="statuses">
        <legend>Status</legend>
        {RUN_STATUSES.map((status) => (
          <label key={status} className="check">
            <input type="checkbox" checked={draft.status?.includes(status) ?? false} onChange={() => toggle(status)} />
            {status.replace('_', ' ')}
          </label>
        ))}
      </fieldset>
      {field('workflow', 'Workflow')}
      {field('version', 'Version')}
      {field('scheduleId', 'Schedule ID')}
      {field('parentRunId', 'Parent run ID')}
      <div className="field">
        <label htmlFor="filter-after">Created from</label>
        <input
          id="filter-after"
          type="datetime-local"
          value={isoToLocal(draft.createdAfter)}
          onChange={(e) => setDraft({ ...draft, createdAfter: localToIso(e.target.value) })}
        />
      </div>
      <div className="field">
        <label htmlFor="filter-before">Created before</label>
        <input
          id="filter-before"
          type="datetime-local"
          value={isoToLocal(draft.createdBefore)}
          onChange={(e) => setDraft({ ...draft, createdBefore: localToIso(e.target.value) })}
        />
      </div>
      <div className="actions">
        <button type="submit">Apply</button>
        <button type="button" className="secondary" onClick={() => void navigate({ search: {} })}>
          Clear
        </button>
      </div>
    </form>
  );
});

/** One run in the list; rendered again only when its run changes (not on every scrolled frame). */
const RunRow = memo(function RunRow({
  run,
  index,
  project,
  arrived,
}: {
  run: Run;
  index: number;
  project: string;
  arrived: boolean;
}): ReactNode {
  return (
    <tr data-index={index} style={{ height: ROW_HEIGHT }} className={arrived ? 'new' : undefined}>
      <td>
        <Link to="/p/$project/runs/$runId" params={{ project, runId: run.id }} className="mono">
          {run.id}
        </Link>
        {arrived ? <span className="badge new">new</span> : null}
      </td>
      <td>
        {run.workflowName}
        <span className="muted">@{run.workflowVersion}</span>
      </td>
      <td>
        <StatusBadge status={run.status} />
        {run.waitingSignal !== null && run.status === 'suspended' ? <span className="muted"> waiting for {run.waitingSignal}</span> : null}
      </td>
      <td>
        <Time at={run.createdAt} />
      </td>
      <td>{formatDuration(duration(run))}</td>
      <td className="mono">{run.dataPlaneId}</td>
    </tr>
  );
});

const NONE: ReadonlySet<string> = new Set();

/**
 * The runs that arrived while this list was open: newer than the newest run of its first answer
 * (pages fetched by scrolling are older, so they never count). Starts again when the filters change.
 */
function useArrivals(rows: readonly Run[], filters: string, updatedAt: number): ReadonlySet<string> {
  const newest = useRef<{ filters: string; createdAt: string } | null>(null);
  const [arrived, setArrived] = useState<{ filters: string; ids: ReadonlySet<string> }>({ filters, ids: NONE });
  useEffect(() => {
    if (updatedAt === 0) return;
    const top = rows.reduce((max, run) => ((run.createdAt ?? '') > max ? (run.createdAt ?? '') : max), '');
    const seen = newest.current;
    if (seen === null || seen.filters !== filters) {
      newest.current = { filters, createdAt: top };
      return;
    }
    const added = rows.filter((run) => (run.createdAt ?? '') > seen.createdAt).map((run) => run.id);
    if (added.length === 0) return;
    newest.current = { filters, createdAt: top };
    setArrived((prev) => ({ filters, ids: new Set([...(prev.filters === filters ? prev.ids : []), ...added]) }));
  }, [rows, filters, updatedAt]);
  return arrived.filters === filters ? arrived.ids : NONE;
}

export function RunsPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const search = route.useSearch();
  const queryClient = useQueryClient();
  const queryKey = useMemo(() => ['runs', project, search] as const, [project, search]);
  const runs = useInfiniteQuery({
    queryKey,
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam, signal }) =>
      unwrap(
        cp.GET('/v1/projects/{project}/runs', {
          params: {
            path: { project },
            query: {
              ...search,
              ...(search.status === undefined ? {} : { status: search.status.join(',') }),
              limit: String(PAGE),
              ...(pageParam === undefined ? {} : { cursor: pageParam }),
            },
          },
          signal,
        }),
      ),
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    refetchInterval: (query) => ((query.state.data?.pages.length ?? 0) <= LIVE_PAGES ? 3_000 : false),
  });
  const rows = useMemo(() => runs.data?.pages.flatMap((p) => p.runs) ?? [], [runs.data]);
  const live = (runs.data?.pages.length ?? 0) <= LIVE_PAGES;
  const arrived = useArrivals(rows, `${project} ${JSON.stringify(search)}`, runs.dataUpdatedAt);
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const items = virtual.getVirtualItems();
  const lastIndex = items.at(-1)?.index ?? -1;
  const backAtTop = (items[0]?.index ?? 0) === 0;
  const pageCount = runs.data?.pages.length ?? 0;
  useEffect(() => {
    if (!backAtTop || pageCount <= LIVE_PAGES || runs.isFetching) return;
    queryClient.setQueryData<typeof runs.data>(queryKey, (data) =>
      data === undefined ? data : { pages: data.pages.slice(0, LIVE_PAGES), pageParams: data.pageParams.slice(0, LIVE_PAGES) },
    );
  }, [backAtTop, pageCount, runs.isFetching, queryClient, queryKey]);
  useEffect(() => {
    if (lastIndex >= rows.length - 20 && runs.hasNextPage && !runs.isFetchingNextPage) void runs.fetchNextPage();
  }, [lastIndex, rows.length, runs]);
  const top = items[0]?.start ?? 0;
  const bottom = virtual.getTotalSize() - (items.at(-1)?.end ?? 0);

  return (
    <>
      <div className="title-row">
        <h1>Runs</h1>
        <span className={live ? 'live on' : 'live'} role="status">
          {live ? 'Live' : 'Paused while you scroll'}
          {arrived.size > 0 ? `: ${arrived.size} new run${arrived.size === 1 ? '' : 's'} since the list opened` : ''}
        </span>
      </div>
      <Filters search={search} />
      {runs.error === null ? null : <ErrorMessage error={runs.error} title="Runs could not be listed" />}
      {runs.isPending ? <Loading what="runs" /> : null}
      {runs.isSuccess && rows.length === 0 ? <p>No run matches these filters.</p> : null}
      {rows.length > 0 ? (
        <div className="scroller" ref={scroller} tabIndex={0} aria-label="Runs list, scrolls to load more" data-testid="runs-scroller">
          <table className="runs">
            <colgroup>
              <col style={{ width: '27%' }} />
              <col style={{ width: '12%' }} />
              <col style={{ width: '13%' }} />
              <col style={{ width: '14%' }} />
              <col style={{ width: '8%' }} />
              <col style={{ width: '26%' }} />
            </colgroup>
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Workflow</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Duration</th>
                <th scope="col">Data plane</th>
              </tr>
            </thead>
            <tbody>
              {top > 0 ? (
                <tr aria-hidden="true" style={{ height: top }}>
                  <td colSpan={6} />
                </tr>
              ) : null}
              {items.map((item) => {
                const run = rows[item.index]!;
                return <RunRow key={run.id} run={run} index={item.index} project={project} arrived={arrived.has(run.id)} />;
              })}
              {bottom > 0 ? (
                <tr aria-hidden="true" style={{ height: bottom }}>
                  <td colSpan={6} />
                </tr>
              ) : null}
            </tbody>
          </table>
          {runs.isFetchingNextPage ? <Loading what="more runs" /> : null}
        </div>
      ) : null}
      <p className="muted" role="status" data-testid="runs-count">
        {rows.length} run{rows.length === 1 ? '' : 's'} loaded{runs.hasNextPage ? '; more load as you scroll' : ''}
      </p>
    </>
  );
}
