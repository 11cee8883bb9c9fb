// One run: metadata from the control plane (status, timeline, totals, child runs) and, beside it,
// the payloads (input, output, error, each step's value, transcripts, the live token stream)
// fetched by this browser from the run's data-plane gateway. The control plane never sees what
// those panels show. The selected call is in the address (?call=N), so a link can point at it.
import { useEffect, useState, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link, createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap } from '../api/control-plane.js';
import { gatewayClient, unwrapGateway } from '../api/gateway.js';
import { ErrorMessage, JsonView, Loading, StatusBadge, Time, formatBytes, formatDuration } from '../components/common.js';
import { useGatewaysVersion } from '../gateways.js';
import { FINAL, RunActions } from './run/actions.js';
import { ChildRuns } from './run/children.js';
import { PanelError } from './run/panel-error.js';
import { ErrorWithStack, StepDetail } from './run/step-detail.js';
import { LiveStream } from './run/stream.js';
import { Timeline } from './run/timeline.js';

const route = getRouteApi('/p/$project/runs/$runId');

/**
 * The run's payloads from its gateway: the journal (input and every recorded value) and the result.
 * `notInDataPlaneYet`: a fork still queued, whose journal the data plane copies when a worker takes it.
 */
export function useRunPayloads(dataPlaneId: string | undefined, runId: string, status: string | undefined, notInDataPlaneYet = false) {
  const gateways = useGatewaysVersion();
  const journal = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'journal', runId],
    enabled: dataPlaneId !== undefined && !notInDataPlaneYet,
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId!);
      return unwrapGateway(url, client.GET('/v1/runs/{id}/journal', { params: { path: { id: runId } }, signal }));
    },
    refetchInterval: status !== undefined && !FINAL.has(status) ? 3_000 : false,
  });
  const result = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'run', runId, status],
    enabled: dataPlaneId !== undefined && status !== undefined && FINAL.has(status),
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId!);
      return unwrapGateway(url, client.GET('/v1/runs/{id}', { params: { path: { id: runId } }, signal }));
    },
  });
  return { journal, result };
}

/** The current time, ticking each second while the run is live (the timeline's right edge). */
function useNow(live: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, [live]);
  return now;
}

function RunPage(): ReactNode {
  const { project, runId } = route.useParams();
  const { call: selected } = route.useSearch();
  const navigate = route.useNavigate();
  const described = useQuery({
    queryKey: ['run', project, runId],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/runs/{id}', { params: { path: { project, id: runId } }, signal })),
    refetchInterval: (query) => (query.state.data !== undefined && FINAL.has(query.state.data.run.status) ? false : 2_000),
  });
  const run = described.data?.run;
  const live = run !== undefined && !FINAL.has(run.status);
  const now = useNow(live);
  // The live output stays on the page after the run ends, with the whole text it streamed.
  const [watchedLive, setWatchedLive] = useState(false);
  useEffect(() => {
    if (live) setWatchedLive(true);
  }, [live]);
  // A fork (or a scheduled run) is created in the data plane by the worker that takes it: until that
  // worker reports a call past the copied journal, the gateway has no record of it to read.
  const createdByWorker = run !== undefined && (run.forkedFromRunId !== null || run.scheduleId !== null);
  const notInDataPlaneYet =
    createdByWorker &&
    (run.status === 'queued' ||
      (run.status === 'running' && !(described.data?.timeline ?? []).some((c) => c.position >= (run.forkPosition ?? 0))));
  const { journal, result } = useRunPayloads(run?.dataPlaneId, runId, run?.status, notInDataPlaneYet);

  if (described.isPending) return <Loading what="the run" />;
  if (described.error !== null) return <ErrorMessage error={described.error} title={`Run ${runId}`} />;
  const { totals, timeline } = described.data;
  const r = described.data.run;
  const selectedCall = timeline.find((c) => c.position === selected);
  const select = (position: number): void =>
    void navigate({ search: { call: position === selected ? undefined : position }, replace: true, resetScroll: false });
  return (
    <>
      <div className="title-row">
        <h1>
          Run <span className="mono">{r.id}</span>
        </h1>
        <StatusBadge status={r.status} />
      </div>
      <dl className="facts">
        <dt>Workflow</dt>
        <dd>
          <Link to="/p/$project/runs" params={{ project }} search={{ workflow: r.workflowName }}>
            {r.workflowName}
          </Link>
          @{r.workflowVersion}
        </dd>
        <dt>Created</dt>
        <dd>
          <Time at={r.createdAt} />
        </dd>
        <dt>Ended</dt>
        <dd>
          <Time at={r.endedAt} />
        </dd>
        <dt>Wall time</dt>
        <dd>{formatDuration(totals.wallTimeMs)}</dd>
        <dt>Calls</dt>
        <dd>
          {totals.durableCalls} ({totals.attempts} attempts, {totals.retries} retries)
        </dd>
        {totals.inputTokens + totals.outputTokens === 0 ? null : (
          <>
            <dt>Tokens</dt>
            <dd>
              {totals.inputTokens} in / {totals.outputTokens} out
              {totals.tokensByModel.length === 0
                ? ''
                : ` (${totals.tokensByModel.map((m) => `${m.model ?? 'unknown model'}: ${m.inputTokens} / ${m.outputTokens}`).join('; ')})`}
            </dd>
          </>
        )}
        <dt>Data plane</dt>
        <dd className="mono">{r.dataPlaneId}</dd>
        <dt>Input size</dt>
        <dd>{formatBytes(r.inputSize)}</dd>
        {r.parentRunId === null ? null : (
          <>
            <dt>Parent run</dt>
            <dd>
              <Link to="/p/$project/runs/$runId" params={{ project, runId: r.parentRunId }} search={{}} className="mono">
                {r.parentRunId}
              </Link>
            </dd>
          </>
        )}
        {r.forkedFromRunId === null ? null : (
          <>
            <dt>Forked from</dt>
            <dd>
              <Link to="/p/$project/runs/$runId" params={{ project, runId: r.forkedFromRunId }} search={{}} className="mono">
                {r.forkedFromRunId}
              </Link>{' '}
              at step {r.forkPosition}
            </dd>
          </>
        )}
        {r.waitingSignal === null ? null : (
          <>
            <dt>Waiting for</dt>
            <dd>{r.waitingSignal}</dd>
          </>
        )}
        {r.errorCode === null ? null : (
          <>
            <dt>Error code</dt>
            <dd className="mono">{r.errorCode}</dd>
          </>
        )}
      </dl>

      <RunActions project={project} run={r} calls={timeline} selected={selected} />

      <Timeline run={r} calls={timeline} now={now} selected={selected} onSelect={select} />
      {selectedCall === undefined ? null : (
        <StepDetail key={selectedCall.position} dataPlaneId={r.dataPlaneId} runId={r.id} call={selectedCall} live={live} />
      )}

      <section aria-labelledby="payloads-heading">
        <h2 id="payloads-heading">Payloads</h2>
        <p className="muted">Fetched by this browser from the data plane's gateway; the control plane never sees them.</p>
        <div className="panels">
          <section className="panel" aria-labelledby="input-heading">
            <h3 id="input-heading">Input</h3>
            {notInDataPlaneYet ? (
              <p className="muted">
                {r.forkedFromRunId !== null
                  ? 'The data plane copies this fork’s journal and input when a worker takes it.'
                  : 'The data plane creates this scheduled run, with its input, when a worker takes it.'}
              </p>
            ) : journal.error !== null ? (
              <PanelError error={journal.error} what="the input" />
            ) : journal.data === undefined ? (
              <Loading what="the input" />
            ) : (
              <JsonView value={journal.data.input} label="Input value" />
            )}
          </section>
          <section className="panel" aria-labelledby="output-heading">
            <h3 id="output-heading">{r.status === 'completed' ? 'Output' : 'Result'}</h3>
            {!FINAL.has(r.status) ? (
              <p className="muted">The run has not ended.</p>
            ) : result.error !== null ? (
              <PanelError error={result.error} what="the result" />
            ) : result.data === undefined ? (
              <Loading what="the result" />
            ) : result.data.error !== undefined ? (
              <ErrorWithStack error={result.data.error} />
            ) : (
              <JsonView value={result.data.output} label="Output value" />
            )}
          </section>
          {live || watchedLive ? <LiveStream dataPlaneId={r.dataPlaneId} runId={r.id} /> : null}
        </div>
      </section>

      <ChildRuns project={project} runId={r.id} live={live} />
    </>
  );
}

export const Route = createLazyRoute('/p/$project/runs/$runId')({ component: RunPage });
