// The selected durable call: its recorded result or error (with the stack) and, for a model
// call, its transcript — fetched by this browser from the gateway, never through the control plane.
import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { ApiError } from '../../api/errors.js';
import { gatewayClient, unwrapGateway, type GatewaySchemas } from '../../api/gateway.js';
import { JsonView, Loading, StatusBadge, formatDuration } from '../../components/common.js';
import { useGatewaysVersion } from '../../gateways.js';
import { PanelError } from './panel-error.js';
import { tokensOf, waitOf, type TimelineCall } from './timeline.js';

/** An error as the gateway shows it: name, message, code and the stack when one was recorded. */
export function ErrorWithStack({ error }: { error: GatewaySchemas['ErrorView'] }): ReactNode {
  return (
    <div className="run-error">
      <p>
        <strong>{error.name}</strong>: {error.message}
        {error.code === null || error.message.includes(error.code) ? null : <span className="mono"> [{error.code}]</span>}
      </p>
      {error.stack === null ? (
        <p className="muted">No stack was recorded.</p>
      ) : (
        <pre className="stack" aria-label="Stack trace" tabIndex={0}>
          {error.stack}
        </pre>
      )}
    </div>
  );
}

const notFound = (error: unknown): boolean => error instanceof ApiError && error.status === 404;

export function StepDetail({
  dataPlaneId,
  runId,
  call,
  live,
}: {
  dataPlaneId: string;
  runId: string;
  call: TimelineCall;
  live: boolean;
}): ReactNode {
  const gateways = useGatewaysVersion();
  const position = String(call.position);
  const open = call.status === 'running' || call.status === 'waiting' || call.status === 'retrying';
  const entry = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'step', runId, position, call.status, call.attemptCount],
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId);
      return unwrapGateway(url, client.GET('/v1/runs/{id}/steps/{position}', { params: { path: { id: runId, position } }, signal }));
    },
    retry: (count, error) => !notFound(error) && count < 2,
    refetchInterval: live && open ? 2_000 : false,
  });
  const transcript = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'transcript', runId, position, call.status],
    enabled: call.kind === 'model' && !open,
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId);
      return unwrapGateway(
        url,
        client.GET('/v1/runs/{id}/steps/{position}/transcript', { params: { path: { id: runId, position } }, signal }),
      );
    },
    retry: (count, error) => !notFound(error) && count < 2,
  });
  return (
    <section className="panel step-detail" aria-labelledby="step-heading">
      <h3 id="step-heading">
        Call {call.position}: {call.kind} {call.name}
      </h3>
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={call.status} />
          {call.copied ? ' (copied from the source run when this run was forked; not executed, not counted in usage)' : null}
        </dd>
        <dt>Attempts</dt>
        <dd>
          {call.attemptCount}
          {call.retries > 0 ? ` (${call.retries} retr${call.retries === 1 ? 'y' : 'ies'})` : ''}
        </dd>
        <dt>Duration</dt>
        <dd>{formatDuration(call.durationMs)}</dd>
        {call.inputTokens === null ? null : (
          <>
            <dt>Tokens</dt>
            <dd>{tokensOf(call)}</dd>
          </>
        )}
        {waitOf(call) === '' ? null : (
          <>
            <dt>Wait</dt>
            <dd>{waitOf(call)}</dd>
          </>
        )}
      </dl>
      {call.attempts.some((a) => a.errorCode !== null) ? (
        <ul className="attempts" aria-label="Attempts">
          {call.attempts.map((a) => (
            <li key={a.attempt}>
              Attempt {a.attempt}: {a.status}
              {a.errorCode === null ? '' : ` (${a.errorCode})`}, {formatDuration(a.durationMs)}
              {a.model === null ? '' : `, ${a.model}`}
              {a.inputTokens === null ? '' : `, ${tokensOf(a)} tokens`}
            </li>
          ))}
        </ul>
      ) : null}
      <h4>{call.status === 'failed' ? 'Error' : 'Result'}</h4>
      {entry.error !== null ? (
        notFound(entry.error) ? (
          <p className="muted">Nothing is recorded for this call yet.</p>
        ) : (
          <PanelError error={entry.error} what="this call's result" />
        )
      ) : entry.data === undefined ? (
        <Loading what="the call's result" />
      ) : entry.data.error !== undefined ? (
        <ErrorWithStack error={entry.data.error} />
      ) : 'output' in entry.data ? (
        <JsonView value={entry.data.output} label={`Result of call ${call.position}`} />
      ) : (
        <p className="muted">No result yet ({entry.data.status}).</p>
      )}
      {call.kind === 'model' ? (
        <>
          <h4>Transcript</h4>
          {open ? (
            <p className="muted">The transcript is stored when the call ends; its text streams below meanwhile.</p>
          ) : transcript.error !== null ? (
            notFound(transcript.error) ? (
              <p className="muted">No transcript is stored for this call.</p>
            ) : (
              <PanelError error={transcript.error} what="the transcript" />
            )
          ) : transcript.data === undefined ? (
            <Loading what="the transcript" />
          ) : (
            <JsonView value={transcript.data.transcript} label={`Transcript of call ${call.position}`} />
          )}
        </>
      ) : null}
    </section>
  );
}
