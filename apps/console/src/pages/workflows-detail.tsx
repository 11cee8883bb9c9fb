// One workflow of the registry: every version with its settings (task queue, retry, timeouts,
// schedules declared in code, schema digests), deprecation, the flow control of the name (edited
// here), the project's schedules that start it, and links to its runs and its run form.
import { useState, type SubmitEvent, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { gatewayClient, unwrapGateway } from '../api/gateway.js';
import { ErrorMessage, JsonView, Loading, Time, formatDuration } from '../components/common.js';
import { gatewayFor, useGatewaysVersion } from '../gateways.js';
import { describeFlowControl, type FlowControl } from './workflows.js';

const route = getRouteApi('/p/$project/workflows/$name');

type WorkflowVersion = Schemas['WorkflowVersion'];

function Retry({ retry }: { retry: WorkflowVersion['retry'] }): ReactNode {
  if (retry === null) return <span className="muted">default</span>;
  const attempts = retry.maximumAttempts === 0 ? 'unlimited attempts' : `${retry.maximumAttempts} attempts`;
  return (
    <span>
      {attempts}, first wait {formatDuration(retry.initialInterval)}, ×{retry.backoffCoefficient}, at most{' '}
      {formatDuration(retry.maximumInterval)}
    </span>
  );
}

function Deprecate({ project, version }: { project: string; version: WorkflowVersion }): ReactNode {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const deprecate = useMutation({
    mutationFn: () =>
      unwrap(
        cp.POST('/v1/projects/{project}/workflows/{name}/versions/{version}/deprecate', {
          params: { path: { project, name: version.name, version: version.version } },
        }),
      ),
    onSuccess: async () => {
      setConfirming(false);
      await queryClient.invalidateQueries({ queryKey: ['workflow', project, version.name] });
      await queryClient.invalidateQueries({ queryKey: ['workflows', project] });
    },
  });
  if (version.deprecated) {
    return (
      <span>
        <span className="badge status-cancelled">deprecated</span> <Time at={version.deprecatedAt} />
      </span>
    );
  }
  return (
    <div className="stack">
      {confirming ? (
        <div role="group" aria-label={`Confirm deprecating version ${version.version}`} className="actions">
          <span>New runs of {version.version} will be refused; runs already started go on.</span>
          <button type="button" className="danger" onClick={() => deprecate.mutate()} disabled={deprecate.isPending}>
            Deprecate {version.version}
          </button>
          <button type="button" className="secondary" onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" className="secondary" onClick={() => setConfirming(true)}>
          Deprecate…
          <span className="visually-hidden"> version {version.version}</span>
        </button>
      )}
      {deprecate.error === null ? null : <ErrorMessage error={deprecate.error} title="Not deprecated" />}
    </div>
  );
}

const numberOrNull = (value: string): number | null => (value.trim() === '' ? null : Number(value));

function FlowControlEditor({ project, name, flow }: { project: string; name: string; flow: FlowControl }): ReactNode {
  const queryClient = useQueryClient();
  const initial = (): Record<string, string | boolean> => ({
    concurrency: flow.concurrency === null ? '' : String(flow.concurrency.limit),
    concurrencyPerKey: flow.concurrency?.perKey ?? false,
    rate: flow.rateLimit === null ? '' : String(flow.rateLimit.limit),
    periodS: flow.rateLimit === null ? '60' : String(flow.rateLimit.periodMs / 1000),
    ratePerKey: flow.rateLimit?.perKey ?? false,
  });
  const [draft, setDraft] = useState(initial);
  const save = useMutation({
    mutationFn: () => {
      const concurrency = numberOrNull(String(draft['concurrency']));
      const rate = numberOrNull(String(draft['rate']));
      return unwrap(
        cp.PUT('/v1/projects/{project}/workflows/{name}/flow-control', {
          params: { path: { project, name } },
          body: {
            concurrency: concurrency === null ? null : { limit: concurrency, perKey: draft['concurrencyPerKey'] === true },
            rateLimit:
              rate === null
                ? null
                : { limit: rate, periodMs: Math.round(Number(draft['periodS']) * 1000), perKey: draft['ratePerKey'] === true },
          },
        }),
      );
    },
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['workflow', project, name] }),
  });
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    save.mutate();
  };
  const set = (key: string, value: string | boolean): void => setDraft({ ...draft, [key]: value });
  return (
    <form onSubmit={submit} className="stack" aria-label="Flow control">
      <p>
        Now: {describeFlowControl(flow)}
        {flow.updatedAt === null ? null : (
          <span className="muted">
            {' '}
            (changed <Time at={flow.updatedAt} />)
          </span>
        )}
      </p>
      <div className="filters">
        <div className="field">
          <label htmlFor="fc-concurrency">Concurrency limit (empty: none)</label>
          <input
            id="fc-concurrency"
            type="number"
            min={1}
            value={String(draft['concurrency'])}
            onChange={(e) => set('concurrency', e.target.value)}
          />
        </div>
        <label className="check">
          <input
            type="checkbox"
            checked={draft['concurrencyPerKey'] === true}
            onChange={(e) => set('concurrencyPerKey', e.target.checked)}
          />
          per concurrency key
        </label>
        <div className="field">
          <label htmlFor="fc-rate">Rate limit: starts (empty: none)</label>
          <input id="fc-rate" type="number" min={1} value={String(draft['rate'])} onChange={(e) => set('rate', e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="fc-period">per seconds</label>
          <input
            id="fc-period"
            type="number"
            min={1}
            step="any"
            value={String(draft['periodS'])}
            onChange={(e) => set('periodS', e.target.value)}
          />
        </div>
        <label className="check">
          <input type="checkbox" checked={draft['ratePerKey'] === true} onChange={(e) => set('ratePerKey', e.target.checked)} />
          per concurrency key
        </label>
        <div className="actions">
          <button type="submit" disabled={save.isPending}>
            Save flow control
          </button>
        </div>
      </div>
      {save.error === null ? null : <ErrorMessage error={save.error} title="Flow control not saved" />}
      {save.isSuccess ? (
        <p role="status" className="muted">
          Saved.
        </p>
      ) : null}
    </form>
  );
}

function ProjectSchedules({ project, name }: { project: string; name: string }): ReactNode {
  const schedules = useQuery({
    queryKey: ['schedules', project, 'first-page'],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/schedules', { params: { path: { project }, query: { limit: '200' } }, signal })),
  });
  if (schedules.error !== null) return <ErrorMessage error={schedules.error} title="Schedules could not be listed" />;
  if (schedules.data === undefined) return <Loading what="schedules" />;
  const mine = schedules.data.schedules.filter((s) => s.workflowName === name);
  if (mine.length === 0) return <p className="muted">No schedule of this project starts {name}.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Schedule</th>
          <th scope="col">Cron</th>
          <th scope="col">Version</th>
          <th scope="col">Overlap</th>
          <th scope="col">Next tick</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {mine.map((s) => (
          <tr key={s.id}>
            <td>
              <Link to="/p/$project/runs" params={{ project }} search={{ scheduleId: s.id }}>
                {s.name ?? s.id}
              </Link>
            </td>
            <td className="mono">
              {s.cron} ({s.timeZone})
            </td>
            <td>{s.workflowVersion ?? 'newest'}</td>
            <td>{s.overlapPolicy.replaceAll('_', ' ')}</td>
            <td>
              <Time at={s.nextTickAt} />
            </td>
            <td>{s.paused ? 'paused' : 'active'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The schemas each version declares in code, read by this browser from a data plane's gateway. */
function DeclaredSchemas({ project, name }: { project: string; name: string }): ReactNode {
  const gateways = useGatewaysVersion();
  const planes = useQuery({
    queryKey: ['data-planes', project],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/data-planes', { params: { path: { project } }, signal })),
    staleTime: 60_000,
  });
  const live = (planes.data?.dataPlanes ?? []).filter((d) => d.revokedAt === null);
  const dataPlaneId = (live.find((d) => gatewayFor(d.id) !== undefined) ?? live[0])?.id;
  const schemas = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'schemas', name],
    enabled: dataPlaneId !== undefined,
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId!);
      return unwrapGateway(url, client.GET('/v1/workflows/{name}/schemas', { params: { path: { name } }, signal }));
    },
  });
  if (planes.error !== null) return <ErrorMessage error={planes.error} title="Data planes could not be listed" />;
  if (planes.isPending) return <Loading what="data planes" />;
  if (dataPlaneId === undefined) return <p className="muted">This project has no data plane to read schemas from.</p>;
  if (schemas.error !== null) return <ErrorMessage error={schemas.error} title="The schemas could not be read" />;
  if (schemas.data === undefined) return <Loading what="the schemas" />;
  if (schemas.data.versions.length === 0) {
    return <p className="muted">No worker of this data plane has catalogued the schemas of {name}.</p>;
  }
  return (
    <div className="stack">
      {schemas.data.versions.map((v) => (
        <section key={v.version} className="panel" aria-label={`Schemas of version ${v.version}`}>
          <h3>Version {v.version}</h3>
          <div className="panels">
            <div>
              <h4>Input</h4>
              {v.input === null ? (
                <p className="muted">none declared</p>
              ) : (
                <JsonView value={v.input} label={`Input schema of version ${v.version}`} />
              )}
            </div>
            <div>
              <h4>Output</h4>
              {v.output === null ? (
                <p className="muted">none declared</p>
              ) : (
                <JsonView value={v.output} label={`Output schema of version ${v.version}`} />
              )}
            </div>
            {v.signals.map((signal) => (
              <div key={signal.name}>
                <h4>Signal {signal.name}</h4>
                <JsonView value={signal.schema} label={`Schema of signal ${signal.name} of version ${v.version}`} />
              </div>
            ))}
          </div>
        </section>
      ))}
    </div>
  );
}

function WorkflowPage(): ReactNode {
  const { project, name } = route.useParams();
  const workflow = useQuery({
    queryKey: ['workflow', project, name],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/workflows/{name}', { params: { path: { project, name } }, signal })),
  });
  if (workflow.isPending) return <Loading what="the workflow" />;
  if (workflow.error !== null) return <ErrorMessage error={workflow.error} title={`Workflow ${name}`} />;
  const w = workflow.data.workflow;
  const versions = [...w.versions].sort((a, b) => b.registeredAt.localeCompare(a.registeredAt));
  return (
    <>
      <div className="title-row">
        <h1>Workflow {w.name}</h1>
        <Link to="/p/$project/runs" params={{ project }} search={{ workflow: w.name }}>
          Runs of {w.name}
        </Link>
        <Link to="/p/$project/workflows/$name/run" params={{ project, name: w.name }} search={{}}>
          Start a run
        </Link>
      </div>

      <section aria-labelledby="versions-heading">
        <h2 id="versions-heading">Versions</h2>
        <table className="versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Registered</th>
              <th scope="col">Task queue</th>
              <th scope="col">Retry</th>
              <th scope="col">Timeouts</th>
              <th scope="col">Schedules in code</th>
              <th scope="col">Input schema</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={v.version}>
                <th scope="row">
                  <div className="stack">
                    <span>{v.version}</span>
                    <Link
                      to="/p/$project/runs"
                      params={{ project }}
                      search={{ workflow: w.name, version: v.version }}
                      aria-label={`Runs of version ${v.version}`}
                    >
                      Runs
                    </Link>
                    {v.deprecated ? null : (
                      <Link
                        to="/p/$project/workflows/$name/run"
                        params={{ project, name: w.name }}
                        search={{ version: v.version }}
                        aria-label={`Start a run of version ${v.version}`}
                      >
                        Start
                      </Link>
                    )}
                  </div>
                </th>
                <td>
                  <Time at={v.registeredAt} />
                  <div className="muted">by {v.source === 'worker' ? 'a worker' : (v.registeredBy ?? 'the API')}</div>
                </td>
                <td>{v.taskQueue}</td>
                <td>
                  <Retry retry={v.retry} />
                </td>
                <td>
                  run {v.timeouts.run === null ? 'none' : formatDuration(v.timeouts.run)}, step{' '}
                  {v.timeouts.step === null ? 'none' : formatDuration(v.timeouts.step)}
                </td>
                <td>
                  {v.schedules.length === 0 ? (
                    <span className="muted">none</span>
                  ) : (
                    <ul className="inline-list">
                      {v.schedules.map((s) => (
                        <li key={`${s.cron}@${s.timezone}`} className="mono">
                          {s.cron} ({s.timezone})
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td className="mono" title={v.inputSchemaDigest ?? undefined}>
                  {v.inputSchemaDigest === null ? <span className="muted">none</span> : `sha256:${v.inputSchemaDigest.slice(0, 12)}…`}
                </td>
                <td>
                  <Deprecate project={project} version={v} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="flow-heading">
        <h2 id="flow-heading">Flow control</h2>
        {/* Keyed by the last change, so the form starts again from what the server holds. */}
        <FlowControlEditor key={w.flowControl.updatedAt ?? 'none'} project={project} name={w.name} flow={w.flowControl} />
      </section>

      <section aria-labelledby="schedules-heading">
        <h2 id="schedules-heading">Schedules</h2>
        <ProjectSchedules project={project} name={w.name} />
      </section>

      <section aria-labelledby="schemas-heading">
        <h2 id="schemas-heading">Schemas</h2>
        <p className="muted">Declared in code and catalogued by the workers in the data plane; read from its gateway by this browser.</p>
        <DeclaredSchemas project={project} name={w.name} />
      </section>
    </>
  );
}

export const Route = createLazyRoute('/p/$project/workflows/$name')({ component: WorkflowPage });
