// The replay check of a run against a newer registered version of its workflow: the browser asks the
// data plane's gateway, a worker of the data plane that runs the version replays the run's journal
// against that version's code (nothing runs, nothing is written to the run) and the outcome comes
// back here. The journal, the outcome and its messages never pass through the control plane, which
// only lists the versions. Without a worker that runs the version the gateway says so; local code is
// checked with `cairn replay`.
import { useState, type SubmitEvent, type ReactNode } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { cp, unwrap, type Run } from '../../api/control-plane.js';
import { gatewayClient, unwrapGateway, type GatewaySchemas } from '../../api/gateway.js';
import { ErrorMessage } from '../../components/common.js';
import { PanelError } from './panel-error.js';

type Check = GatewaySchemas['ReplayCheckView'];
type Outcome = GatewaySchemas['ReplayOutcome'];
type Call = NonNullable<Outcome['expected']>;

/** How long each read of the check waits at the gateway for the answer, in seconds. */
const WAIT_SECONDS = 20;

/** Asks for the check, then reads it until a worker answered (or the gateway said nobody will). */
async function runCheck(run: Run, version: string): Promise<Check> {
  const { client, url } = gatewayClient(run.dataPlaneId);
  const asked = await unwrapGateway(
    url,
    client.POST('/v1/runs/{id}/replay-checks', { params: { path: { id: run.id } }, body: { version } }),
  );
  for (;;) {
    const check = await unwrapGateway(
      url,
      client.GET('/v1/runs/{id}/replay-checks/{checkId}', {
        params: { path: { id: run.id, checkId: asked.checkId }, query: { wait: String(WAIT_SECONDS) } },
      }),
    );
    if (check.status !== 'pending' && check.status !== 'running') return check;
  }
}

const callText = (call: Call | null | undefined, none: string): string =>
  call === null || call === undefined ? none : `${call.kind} "${call.name}"${call.keyDigest === null ? '' : ' (keyed)'}`;

function cleanSummary(outcome: Outcome): string {
  switch (outcome.outcome) {
    case 'completed':
      return 'the code completes where the journal ends, as the run did.';
    case 'failed':
      return `the code fails where the run failed (${outcome.error?.name ?? 'error'}: ${outcome.error?.message ?? ''}).`;
    case 'waiting':
      return 'the code waits where the run waits.';
    default:
      return outcome.next === undefined
        ? 'the code goes on past the journal.'
        : `the code goes on past the journal with ${callText(outcome.next, '')} at position ${outcome.next.position}.`;
  }
}

function CheckOutcome({ check }: { check: Check }): ReactNode {
  const version = check.version;
  if (check.status === 'unsupported') {
    return (
      <ErrorMessage
        title={`No replay check on version ${version}`}
        error={`${check.message ?? ''}. Start a worker that registers ${check.workflow}@${version}, or check your code with the command below.`}
      />
    );
  }
  if (check.status === 'failed' || check.result === null) {
    return <ErrorMessage title={`The replay check on version ${version} failed`} error={check.message ?? 'no reason given'} />;
  }
  const outcome = check.result;
  const counts = `${outcome.replayedCalls} of ${outcome.journalEntries} journaled calls replayed`;
  if (outcome.ok) {
    return (
      <div role="status" className="verified ok">
        <strong>Replays cleanly on version {version}</strong>
        <p>
          {counts}; {cleanSummary(outcome)}
        </p>
      </div>
    );
  }
  if (outcome.outcome === 'non_determinism') {
    return (
      <div role="status" className="verified broken">
        <strong>
          Diverges on version {version} at position {outcome.position}
        </strong>
        <dl className="facts" aria-label="Where the replay diverges">
          <dt>Journal holds</dt>
          <dd>{callText(outcome.expected, 'nothing (the run ended)')}</dd>
          <dt>Version {version} calls</dt>
          <dd>{callText(outcome.actual, 'nothing (the code ends)')}</dd>
        </dl>
        <p>{outcome.message}</p>
        <p className="muted">{counts}. A deployment of this version would fail this run with a non-determinism error.</p>
      </div>
    );
  }
  if (outcome.outcome === 'unreplayable') {
    return (
      <div role="status" className="verified broken">
        <strong>Cannot replay on version {version}: the worker's model configuration is missing</strong>
        <p>{outcome.message}</p>
        <p className="muted">{counts}. Give the workers that answer replay checks the model configuration your other workers have.</p>
      </div>
    );
  }
  return (
    <div role="status" className="verified broken">
      <strong>Diverges on version {version}: the code fails where the run did not</strong>
      <p>{outcome.message}</p>
      <p className="muted">{counts}.</p>
    </div>
  );
}

/** Orders versions by registration, then by their names in natural order: positive when `a` is newer. */
function newerThan(a: { version: string; registeredAt: string }, b: { version: string; registeredAt: string }): number {
  const registered = Date.parse(a.registeredAt) - Date.parse(b.registeredAt);
  return registered !== 0 ? registered : a.version.localeCompare(b.version, 'en', { numeric: true });
}

export function ReplayCheck({ project, run }: { project: string; run: Run }): ReactNode {
  const workflow = useQuery({
    queryKey: ['workflow', project, run.workflowName],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/workflows/{name}', { params: { path: { project, name: run.workflowName } }, signal })),
    staleTime: 60_000,
  });
  const versions = workflow.data?.workflow.versions ?? [];
  const own = versions.find((v) => v.version === run.workflowVersion);
  // Newer: registered after the run's version, or with it and later in natural order (2 < 10); every
  // other version when the run's is not listed.
  const newer = versions
    .filter((v) => v.version !== run.workflowVersion && (own === undefined || newerThan(v, own) > 0))
    .sort((a, b) => newerThan(b, a));
  const [picked, setPicked] = useState<string | null>(null);
  const version = picked ?? newer[0]?.version ?? '';
  const check = useMutation({ mutationFn: (v: string) => runCheck(run, v) });
  const submit = (e: SubmitEvent): void => {
    e.preventDefault();
    if (version !== '') check.mutate(version);
  };
  return (
    <form className="panel stack" aria-labelledby="replay-heading" onSubmit={submit}>
      <h3 id="replay-heading">Replay check</h3>
      <p className="muted">
        Would this run replay cleanly on a newer version? A worker of the data plane that runs the version replays the run's journal against
        it; nothing runs and nothing is written to the run.
      </p>
      {workflow.error === null ? null : <ErrorMessage error={workflow.error} title="The workflow's versions could not be listed" />}
      {workflow.isSuccess && newer.length === 0 ? (
        <p>
          No version of {run.workflowName} newer than this run's ({run.workflowVersion}) is registered.
        </p>
      ) : (
        <>
          <label htmlFor="replay-version">Replay on version</label>
          <select
            id="replay-version"
            value={version}
            onChange={(e) => {
              setPicked(e.target.value);
              check.reset();
            }}
          >
            {newer.map((v) => (
              <option key={v.version} value={v.version}>
                {v.version}
                {v.deprecated ? ' (deprecated)' : ''}
              </option>
            ))}
          </select>
          <div className="actions">
            <button type="submit" disabled={version === '' || check.isPending}>
              {check.isPending ? 'Checking…' : 'Check replay'}
            </button>
          </div>
        </>
      )}
      {check.isPending ? (
        <p className="muted" role="status">
          Waiting for a worker that runs version {check.variables}…
        </p>
      ) : null}
      {check.error === null ? null : <PanelError error={check.error} what="a replay check" verb="run" />}
      {check.data === undefined ? null : <CheckOutcome check={check.data} />}
      <p className="muted">Or check a build of your own code against this run's journal on your machine:</p>
      <pre className="json" tabIndex={0} aria-label="Replay command">
        cairn replay {run.id} -m dist/workflows.js
      </pre>
    </form>
  );
}
