// Usage: runs started, steps executed and model tokens per UTC day, per workflow and per model,
// from the control plane's metering (counters only, never payloads). Each chart has its numbers
// as a table for screen readers. The range is in the address, so a view can be shared.
import { useEffect, useState, type SubmitEvent, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap } from '../api/control-plane.js';
import { DailyBarChart, HorizontalBarChart, formatCount, type Series } from '../components/charts.js';
import { ErrorMessage, Loading } from '../components/common.js';
import { projectRoute } from '../routes/root.js';
import { validateUsageSearch, type SearchDraft, type UsageSearch } from '../routes/pages-search.js';

const route = getRouteApi('/p/$project/usage');

/** How many workflows or models get their own colour in a stacked chart; the rest are summed as "others". */
const STACKED = 6;

/**
 * One series per key (the largest `STACKED` by total, then "others"), each with a value per day,
 * from what each day breaks down into.
 */
function stackedSeries<T>(days: readonly { items: readonly T[] }[], key: (item: T) => string, value: (item: T) => number): Series[] {
  const totals = new Map<string, number>();
  for (const d of days) for (const item of d.items) totals.set(key(item), (totals.get(key(item)) ?? 0) + value(item));
  const ranked = [...totals.entries()].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const own = ranked.slice(0, STACKED).map(([k]) => k);
  const series: Series[] = own.map((k) => ({
    label: k,
    values: days.map((d) => d.items.filter((i) => key(i) === k).reduce((n, i) => n + value(i), 0)),
  }));
  if (ranked.length > STACKED) {
    series.push({
      label: 'others',
      values: days.map((d) => d.items.filter((i) => !own.includes(key(i))).reduce((n, i) => n + value(i), 0)),
    });
  }
  return series;
}

function UsagePage(): ReactNode {
  const { project } = projectRoute.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const [draft, setDraft] = useState<SearchDraft<UsageSearch>>(search);
  useEffect(() => setDraft(search), [search]);
  const usage = useQuery({
    queryKey: ['usage', project, search],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/usage', { params: { path: { project }, query: search }, signal })),
  });
  const apply = (event: SubmitEvent): void => {
    event.preventDefault();
    void navigate({ search: validateUsageSearch(draft as Record<string, unknown>) });
  };
  const report = usage.data;
  const days = report?.days ?? [];
  const categories = days.map((d) => d.day);
  const workflows = [...(report?.totals.workflows ?? [])].sort(
    (a, b) => b.runsStarted - a.runsStarted || b.stepsExecuted - a.stepsExecuted,
  );
  const runsByWorkflow = stackedSeries(
    days.map((d) => ({ items: d.workflows })),
    (w) => w.workflow,
    (w) => w.runsStarted,
  );
  const tokensByModel = stackedSeries(
    days.map((d) => ({ items: d.tokens })),
    (t) => `${t.provider} ${t.model}`,
    (t) => t.inputTokens + t.outputTokens,
  );
  const models = [...(report?.totals.tokens ?? [])].sort((a, b) => b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens));
  return (
    <>
      <h1>Usage</h1>
      <form className="filters" onSubmit={apply} aria-label="Usage range">
        <div className="field">
          <label htmlFor="usage-from">From (UTC day)</label>
          <input
            id="usage-from"
            type="date"
            value={draft.from ?? ''}
            onChange={(e) => setDraft({ ...draft, from: e.target.value || undefined })}
          />
        </div>
        <div className="field">
          <label htmlFor="usage-to">To (UTC day, included)</label>
          <input
            id="usage-to"
            type="date"
            value={draft.to ?? ''}
            onChange={(e) => setDraft({ ...draft, to: e.target.value || undefined })}
          />
        </div>
        <div className="actions">
          <button type="submit">Show</button>
          <button type="button" className="secondary" onClick={() => void navigate({ search: {} })}>
            Last 30 days
          </button>
        </div>
      </form>
      {usage.isPending ? <Loading what="usage" /> : null}
      {usage.error === null ? null : <ErrorMessage error={usage.error} title="Usage could not be read" />}
      {report === undefined ? null : (
        <>
          <p>
            From {report.from} to {report.to} (UTC): <strong>{formatCount(report.totals.runsStarted)}</strong> runs started,{' '}
            <strong>{formatCount(report.totals.stepsExecuted)}</strong> steps executed,{' '}
            <strong>{formatCount(report.totals.inputTokens)}</strong> input and <strong>{formatCount(report.totals.outputTokens)}</strong>{' '}
            output model tokens.
          </p>
          <section aria-labelledby="per-day-heading">
            <h2 id="per-day-heading">Per day</h2>
            <div className="charts">
              <DailyBarChart
                title="Runs started per day"
                categories={categories}
                series={[{ label: 'Runs started', values: days.map((d) => d.runsStarted) }]}
              />
              <DailyBarChart
                title="Steps executed per day"
                categories={categories}
                series={[{ label: 'Steps executed', values: days.map((d) => d.stepsExecuted) }]}
              />
              <DailyBarChart
                title="Model tokens per day"
                categories={categories}
                series={[
                  { label: 'Input tokens', values: days.map((d) => d.inputTokens) },
                  { label: 'Output tokens', values: days.map((d) => d.outputTokens) },
                ]}
              />
            </div>
          </section>
          <section aria-labelledby="per-workflow-heading">
            <h2 id="per-workflow-heading">Per workflow</h2>
            {workflows.length === 0 ? (
              <p className="muted">No workflow ran in this range.</p>
            ) : (
              <div className="charts">
                <DailyBarChart title="Runs started per day, by workflow" categories={categories} series={runsByWorkflow} />
                <HorizontalBarChart
                  title="Runs started per workflow"
                  categoryLabel="Workflow"
                  categories={workflows.map((w) => w.workflow)}
                  series={[{ label: 'Runs started', values: workflows.map((w) => w.runsStarted) }]}
                />
                <HorizontalBarChart
                  title="Steps executed per workflow"
                  categoryLabel="Workflow"
                  categories={workflows.map((w) => w.workflow)}
                  series={[{ label: 'Steps executed', values: workflows.map((w) => w.stepsExecuted) }]}
                />
                <HorizontalBarChart
                  title="Model tokens per workflow"
                  categoryLabel="Workflow"
                  categories={workflows.map((w) => w.workflow)}
                  series={[
                    { label: 'Input tokens', values: workflows.map((w) => w.inputTokens) },
                    { label: 'Output tokens', values: workflows.map((w) => w.outputTokens) },
                  ]}
                />
              </div>
            )}
          </section>
          <section aria-labelledby="per-model-heading">
            <h2 id="per-model-heading">Per model</h2>
            {models.length === 0 ? (
              <p className="muted">No model call in this range.</p>
            ) : (
              <div className="charts">
                <DailyBarChart title="Model tokens per day, by model" categories={categories} series={tokensByModel} />
                <HorizontalBarChart
                  title="Model tokens per model"
                  categoryLabel="Provider and model"
                  categories={models.map((m) => `${m.provider} ${m.model}`)}
                  series={[
                    { label: 'Input tokens', values: models.map((m) => m.inputTokens) },
                    { label: 'Output tokens', values: models.map((m) => m.outputTokens) },
                  ]}
                />
                <HorizontalBarChart
                  title="Model calls per model"
                  categoryLabel="Provider and model"
                  categories={models.map((m) => `${m.provider} ${m.model}`)}
                  series={[{ label: 'Calls', values: models.map((m) => m.calls) }]}
                />
              </div>
            )}
          </section>
        </>
      )}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/usage')({ component: UsagePage });
