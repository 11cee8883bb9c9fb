// One run: metadata from the control plane (status, timeline, totals) and, beside it, the payloads
// (input, output, error, each step's value) fetched by this browser from the run's data-plane
// gateway. The control plane never sees what those panels show.
import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link, createRoute } from '@tanstack/react-router';
import { cp, unwrap } from '../api/control-plane.js';
import { gatewayClient, unwrapGateway } from '../api/gateway.js';
import { ErrorMessage, JsonView, Loading, StatusBadge, Time, formatBytes, formatDuration } from '../components/common.js';
import { useGatewaysVersion } from '../gateways.js';
import { projectRoute } from '../routes/root.js';

const FINAL = new Set(['completed', 'failed', 'cancelled', 'terminated', 'timed_out']);

/** The run's payloads from its gateway: the journal (input and every recorded value) and the result. */
export function useRunPayloads(dataPlaneId: string | undefined, runId: string, status: string | undefined) {
  const gateways = useGatewaysVersion();
  const journal = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'journal', runId],
    enabled: dataPlaneId !== undefined,
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

function RunPage(): ReactNode {
  const { project, runId } = runRoute.useParams();
  const described = useQuery({
    queryKey: ['run', project, runId],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/runs/{id}', { params: { path: { project, id: runId } }, signal })),
    refetchInterval: (query) => (query.state.data !== undefined && FINAL.has(query.state.data.run.status) ? false : 2_000),
  });
  const run = described.data?.run;
  const { journal, result } = useRunPayloads(run?.dataPlaneId, runId, run?.status);

  if (described.isPending) return <Loading what="the run" />;
  if (described.error !== null) return <ErrorMessage error={described.error} title={`Run ${runId}`} />;
  const { totals, timeline } = described.data;
  const r = described.data.run;
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
        <dt>Data plane</dt>
        <dd className="mono">{r.dataPlaneId}</dd>
        <dt>Input size</dt>
        <dd>{formatBytes(r.inputSize)}</dd>
        {r.parentRunId === null ? null : (
          <>
            <dt>Parent run</dt>
            <dd>
              <Link to="/p/$project/runs/$runId" params={{ project, runId: r.parentRunId }} className="mono">
                {r.parentRunId}
              </Link>
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

      <section aria-labelledby="payloads-heading">
        <h2 id="payloads-heading">Payloads</h2>
        <p className="muted">Fetched by this browser from the data plane's gateway; the control plane never sees them.</p>
        <div className="panels">
          <section className="panel" aria-labelledby="input-heading">
            <h3 id="input-heading">Input</h3>
            {journal.error !== null ? (
              <ErrorMessage error={journal.error} />
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
              <ErrorMessage error={result.error} />
            ) : result.data === undefined ? (
              <Loading what="the result" />
            ) : result.data.error !== undefined ? (
              <div className="run-error">
                <p>
                  <strong>{result.data.error.name}</strong>: {result.data.error.message}
                </p>
                {result.data.error.stack === null ? null : <pre className="stack">{result.data.error.stack}</pre>}
              </div>
            ) : (
              <JsonView value={result.data.output} label="Output value" />
            )}
          </section>
        </div>
      </section>

      <section aria-labelledby="timeline-heading">
        <h2 id="timeline-heading">Timeline</h2>
        {timeline.length === 0 ? (
          <p className="muted">No durable call yet.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Kind</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Duration</th>
                <th scope="col">Tokens</th>
              </tr>
            </thead>
            <tbody>
              {timeline.map((call) => (
                <tr key={call.position}>
                  <td>{call.position}</td>
                  <td>{call.kind}</td>
                  <td>{call.name}</td>
                  <td>
                    <StatusBadge status={call.status} />
                  </td>
                  <td>{call.attemptCount}</td>
                  <td>{formatDuration(call.durationMs)}</td>
                  <td>{call.inputTokens === null ? '—' : `${call.inputTokens} in / ${call.outputTokens ?? 0} out`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

export const runRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'runs/$runId',
  component: RunPage,
});
