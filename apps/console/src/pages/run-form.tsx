// Start a run from a form generated from the workflow's input schema. The schema comes from the
// data plane's gateway (the control plane holds only its digest), the input goes from this browser
// to the gateway (POST /v1/runs, a token with the start scope), and on success the page is the new
// run's. The address names the workflow and version only, so it can be shared: whoever opens it
// signs in and lands back here. Values typed stay in this browser; they are never in the address.
import { Suspense, lazy, useState, type SubmitEvent, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link, createLazyRoute, getRouteApi } from '@tanstack/react-router';
import type { ErrorSchema } from '@rjsf/utils';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { ApiError } from '../api/errors.js';
import { gatewayClient, unwrapGateway } from '../api/gateway.js';
import { ErrorMessage, Loading } from '../components/common.js';
import { gatewayFor, saveGateway, useGatewaysVersion } from '../gateways.js';

const route = getRouteApi('/p/$project/workflows/$name/run');

const SchemaForm = lazy(() => import('./workflows-schema-form.js'));

/** One problem the gateway found in the request: where (a JSON Pointer or dotted path) and what. */
export interface Issue {
  readonly in?: string;
  readonly path: string;
  readonly message: string;
}

/**
 * The gateway's issues about the input, placed in rjsf's error tree (`/input/amount` → the amount
 * field); the rest are said above the form.
 */
export function placeIssues(issues: readonly Issue[]): { fields: ErrorSchema | undefined; general: string[] } {
  const fields: Record<string, unknown> = {};
  const general: string[] = [];
  for (const issue of issues) {
    const segments = issue.path.startsWith('/')
      ? issue.path
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      : issue.path.split('.').filter((s) => s !== '');
    if (segments[0] !== 'input') {
      general.push(issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`);
      continue;
    }
    let node = fields;
    for (const segment of segments.slice(1)) {
      node[segment] ??= {};
      node = node[segment] as Record<string, unknown>;
    }
    node['__errors'] = [...((node['__errors'] as string[] | undefined) ?? []), issue.message];
  }
  return { fields: Object.keys(fields).length === 0 ? undefined : (fields as ErrorSchema), general };
}

/** The error a failed start answered, with its issues when the gateway listed them. */
class StartError {
  constructor(
    readonly error: unknown,
    readonly issues: readonly Issue[],
  ) {}
}

/** Sets a gateway for a data plane from the form, when this browser has none yet. */
function GatewaySetup({ dataPlaneId }: { dataPlaneId: string }): ReactNode {
  const [url, setUrl] = useState('');
  const [token, setToken] = useState('');
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    saveGateway(dataPlaneId, { url: url.trim(), token: token.trim(), remember: false });
  };
  return (
    <form onSubmit={submit} className="panel stack" aria-label="Gateway for this data plane">
      <p>
        This browser does not know where the gateway of data plane <span className="mono">{dataPlaneId}</span> is. The form comes from it
        and the input goes to it, never to the control plane. Ask your platform team for its address and a gateway token with the start
        scope.
      </p>
      <div className="field">
        <label htmlFor="gateway-url">Gateway URL</label>
        <input id="gateway-url" type="url" required value={url} onChange={(e) => setUrl(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="gateway-token">Gateway token</label>
        <input id="gateway-token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
      </div>
      <p className="muted">Kept in this tab for the session only.</p>
      <div className="actions">
        <button type="submit" disabled={url.trim() === ''}>
          Use this gateway
        </button>
      </div>
    </form>
  );
}

/** A JSON editor, for a version that declares no input schema. */
function JsonInput({
  text,
  onText,
  onSubmit,
  disabled,
  problems,
  help,
}: {
  text: string;
  onText: (text: string) => void;
  onSubmit: (value: unknown) => void;
  disabled: boolean;
  problems: readonly string[];
  help: string;
}): ReactNode {
  const [parseError, setParseError] = useState<string | null>(null);
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    if (text.trim() === '') {
      setParseError(null);
      onSubmit(undefined);
      return;
    }
    try {
      const value = JSON.parse(text) as unknown;
      setParseError(null);
      onSubmit(value);
    } catch (err) {
      setParseError(`The input is not JSON: ${(err as Error).message}`);
    }
  };
  const errors = [...(parseError === null ? [] : [parseError]), ...problems];
  return (
    <form onSubmit={submit} className="stack" noValidate>
      <label htmlFor="input-json">Input (JSON)</label>
      <textarea
        id="input-json"
        value={text}
        onChange={(e) => onText(e.target.value)}
        spellCheck={false}
        aria-describedby="input-json-help"
        aria-invalid={errors.length > 0}
        aria-errormessage={errors.length > 0 ? 'input-json-errors' : undefined}
      />
      <p id="input-json-help" className="muted">
        {help}
      </p>
      {errors.length === 0 ? null : (
        <ul id="input-json-errors" className="error" role="alert">
          {errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
      <div className="actions">
        <button type="submit" disabled={disabled}>
          Start run
        </button>
      </div>
    </form>
  );
}

function newestUsable(versions: readonly Schemas['WorkflowVersion'][]): string | undefined {
  return [...versions].filter((v) => !v.deprecated).sort((a, b) => b.registeredAt.localeCompare(a.registeredAt))[0]?.version;
}

function RunFormPage(): ReactNode {
  const { project, name } = route.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const gateways = useGatewaysVersion();
  const [chosenPlane, setChosenPlane] = useState<string | undefined>(undefined);
  const [value, setValue] = useState<unknown>(undefined);
  const [jsonText, setJsonText] = useState('');
  /** Whether a version with an input schema is edited as JSON instead of in the form. */
  const [asJson, setAsJson] = useState(false);
  const [toggleError, setToggleError] = useState<string | null>(null);
  const [failure, setFailure] = useState<StartError | null>(null);
  const [busy, setBusy] = useState(false);

  const workflow = useQuery({
    queryKey: ['workflow', project, name],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/workflows/{name}', { params: { path: { project, name } }, signal })),
  });
  const planes = useQuery({
    queryKey: ['data-planes', project],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/data-planes', { params: { path: { project } }, signal })),
    staleTime: 60_000,
  });
  const live = (planes.data?.dataPlanes ?? []).filter((d) => d.revokedAt === null);
  const dataPlaneId = chosenPlane ?? (live.find((d) => gatewayFor(d.id) !== undefined) ?? live[0])?.id;
  const configured = dataPlaneId !== undefined && gatewayFor(dataPlaneId) !== undefined;
  const schemas = useQuery({
    queryKey: ['gateway', gateways, dataPlaneId, 'schemas', name],
    enabled: configured,
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(dataPlaneId!);
      return unwrapGateway(url, client.GET('/v1/workflows/{name}/schemas', { params: { path: { name } }, signal }));
    },
  });

  const versions = workflow.data?.workflow.versions ?? [];
  const version = search.version ?? newestUsable(versions);
  const registered = versions.find((v) => v.version === version);
  const catalogued = schemas.data?.versions.find((v) => v.version === version);
  const inputSchema = catalogued?.input ?? null;
  const problems = failure === null ? { fields: undefined, general: [] } : placeIssues(failure.issues);

  const start = async (input: unknown): Promise<void> => {
    if (dataPlaneId === undefined) return;
    setBusy(true);
    setFailure(null);
    try {
      const { client, url } = gatewayClient(dataPlaneId);
      const call = client.POST('/v1/runs', { body: { workflow: name, ...(version === undefined ? {} : { version }), input } });
      try {
        const started = await unwrapGateway(url, call);
        await navigate({ to: '/p/$project/runs/$runId', params: { project, runId: started.runId } });
      } catch (err) {
        const answer = await call.catch(() => undefined);
        const issues = (answer?.error as { error?: { issues?: Issue[] } } | undefined)?.error?.issues ?? [];
        setFailure(new StartError(err, issues));
      }
    } catch (err) {
      setFailure(new StartError(err, []));
    } finally {
      setBusy(false);
    }
  };

  const shareUrl = `${window.location.origin}/p/${encodeURIComponent(project)}/workflows/${encodeURIComponent(name)}/run${
    version === undefined ? '' : `?version=${encodeURIComponent(version)}`
  }`;

  let body: ReactNode;
  if (workflow.isPending || planes.isPending) body = <Loading what="the workflow" />;
  else if (workflow.error !== null) body = <ErrorMessage error={workflow.error} title={`Workflow ${name}`} />;
  else if (planes.error !== null) body = <ErrorMessage error={planes.error} title="Data planes could not be listed" />;
  else if (dataPlaneId === undefined) {
    body = (
      <ErrorMessage error={new ApiError('answer', 'This project has no data plane: runs start in a data plane, through its gateway.')} />
    );
  } else if (registered === undefined) {
    body = (
      <ErrorMessage
        error={new ApiError('answer', `${name} has no version ${version ?? ''} registered in this project. Pick another version.`)}
      />
    );
  } else if (registered.deprecated) {
    body = <ErrorMessage error={new ApiError('answer', `Version ${registered.version} is deprecated: new runs of it are refused.`)} />;
  } else if (!configured) body = <GatewaySetup dataPlaneId={dataPlaneId} />;
  else if (schemas.error !== null) body = <ErrorMessage error={schemas.error} title="The input schema could not be read" />;
  else if (schemas.data === undefined) body = <Loading what="the input schema" />;
  else if (inputSchema === null || asJson) {
    body = (
      <>
        {catalogued === undefined ? (
          <p className="notice">
            No worker of this data plane has catalogued version {registered.version}&apos;s schemas yet, so the input is not checked here;
            the worker checks it when the run starts.
          </p>
        ) : null}
        {inputSchema === null ? null : (
          <div className="actions">
            <button
              type="button"
              className="secondary"
              onClick={() => {
                try {
                  setValue(jsonText.trim() === '' ? undefined : (JSON.parse(jsonText) as unknown));
                  setToggleError(null);
                  setAsJson(false);
                } catch (err) {
                  setToggleError(`The input is not JSON, so it cannot go back into the form: ${(err as Error).message}`);
                }
              }}
            >
              Edit in the form
            </button>
          </div>
        )}
        <JsonInput
          text={jsonText}
          onText={setJsonText}
          onSubmit={(input) => void start(input)}
          disabled={busy}
          problems={[
            ...(toggleError === null ? [] : [toggleError]),
            ...(failure?.issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`)) ?? []),
          ]}
          help={
            inputSchema === null
              ? 'This version declares no input schema: any JSON value, or nothing.'
              : 'Checked against the input schema by the gateway when you start the run.'
          }
        />
      </>
    );
  } else {
    body = (
      <Suspense fallback={<Loading what="the form" />}>
        <div className="actions">
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setJsonText(value === undefined ? '' : JSON.stringify(value, null, 2));
              setToggleError(null);
              setAsJson(true);
            }}
          >
            Edit as JSON
          </button>
        </div>
        {problems.general.length === 0 ? null : (
          <ul className="error" role="alert" aria-label="Problems with the input">
            {problems.general.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        )}
        <SchemaForm
          schema={inputSchema}
          value={value}
          onChange={(next) => {
            // What the gateway said holds until the value it was said of changes.
            if (problems.fields !== undefined && JSON.stringify(next) !== JSON.stringify(value)) setFailure(null);
            setValue(next);
          }}
          onSubmit={(input) => void start(input)}
          serverErrors={problems.fields}
          disabled={busy}
          submitLabel="Start run"
        />
      </Suspense>
    );
  }

  const failureMessage = failure === null ? null : <ErrorMessage error={failure.error} title="The run did not start" />;

  return (
    <>
      <div className="title-row">
        <h1>Start {name}</h1>
        <Link to="/p/$project/workflows/$name" params={{ project, name }}>
          About this workflow
        </Link>
      </div>
      <div className="filters">
        <div className="field">
          <label htmlFor="run-version">Version</label>
          <select
            id="run-version"
            value={version ?? ''}
            onChange={(e) => {
              setFailure(null);
              void navigate({ search: { version: e.target.value }, replace: true });
            }}
          >
            {versions
              .filter((v) => !v.deprecated || v.version === version)
              .map((v) => (
                <option key={v.version} value={v.version}>
                  {v.version}
                  {v.deprecated ? ' (deprecated)' : ''}
                </option>
              ))}
          </select>
        </div>
        {live.length > 1 ? (
          <div className="field">
            <label htmlFor="run-data-plane">Data plane</label>
            <select id="run-data-plane" value={dataPlaneId} onChange={(e) => setChosenPlane(e.target.value)}>
              {live.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div className="field grow">
          <label htmlFor="share-link">Link to this form</label>
          <input id="share-link" readOnly value={shareUrl} onFocus={(e) => e.currentTarget.select()} />
        </div>
      </div>
      <p className="muted">
        The input goes from this browser to the data plane&apos;s gateway; the control plane never sees it. The link holds the workflow and
        version only.
      </p>
      {failureMessage}
      {body}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/workflows/$name/run')({ component: RunFormPage });
