// Data planes: each one's workers (SDK version, slots, connected, last seen) and the workflow
// versions they announced, from the control plane; revoke. And, in this browser only, the URL
// and token of each data plane's gateway, with a connection test that says what is wrong:
// unreachable, refused by CORS, not ready, a bad token or a token without the read scope. The
// gateway's URL and token are never sent to the control plane.
import { useState, type SubmitEvent, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { createLazyRoute } from '@tanstack/react-router';
import createClient from 'openapi-fetch';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { errorFromAnswer } from '../api/errors.js';
import type { paths as GatewayPaths } from '../gen/gateway.js';
import { ErrorMessage, Loading, Time } from '../components/common.js';
import { gatewayFor, readGateways, removeGateway, saveGateway, useGatewaysVersion } from '../gateways.js';
import { projectRoute } from '../routes/root.js';

type DataPlane = Schemas['DataPlane'];

/** The outcome of a connection test: each check, passed or not, in words. */
interface ConnectionReport {
  readonly ok: boolean;
  readonly lines: readonly { ok: boolean; text: string }[];
}

const corsHint = (): string =>
  `add ${window.location.origin} to the gateway's allowed origins (CAIRN_GATEWAY_CORS_ORIGINS; Helm value gateway.corsOrigins of the cairn-data-plane chart)`;

/**
 * Tests a gateway from this browser: `/readyz` without a token (reachable, CORS, ready), then an
 * authenticated read (the token and its read scope). A fetch the browser refuses is retried
 * opaquely (no-cors): if that gets through, the gateway is up but does not allow this origin.
 */
export async function testGateway(url: string, token: string): Promise<ConnectionReport> {
  const base = url.replace(/\/+$/, '');
  const lines: { ok: boolean; text: string }[] = [];
  let parsed: URL;
  try {
    parsed = new URL(base);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http');
  } catch {
    return { ok: false, lines: [{ ok: false, text: `${url} is not an http:// or https:// URL.` }] };
  }
  let ready: Response;
  try {
    ready = await fetch(`${base}/readyz`, { cache: 'no-store' });
  } catch {
    const reachable = await fetch(`${base}/readyz`, { mode: 'no-cors', cache: 'no-store' }).then(
      () => true,
      () => false,
    );
    lines.push({
      ok: false,
      text: reachable
        ? `The gateway at ${base} answers, but not to this page: it does not allow the origin ${window.location.origin} (CORS). To fix it, ${corsHint()}.`
        : `The gateway at ${base} did not answer: it is unreachable from this browser (wrong URL, not running, or a network or TLS problem).`,
    });
    return { ok: false, lines };
  }
  if (!ready.ok) {
    const body = (await ready.json().catch(() => null)) as unknown;
    lines.push({ ok: false, text: `The gateway answers but is not ready: ${errorFromAnswer(ready.status, body, 'The gateway').message}` });
    return { ok: false, lines };
  }
  lines.push({ ok: true, text: `The gateway at ${base} is reachable from this page and ready.` });
  if (token === '') {
    lines.push({ ok: false, text: 'No token is set: payloads cannot be read. Set a gateway token with the read scope.' });
    return { ok: false, lines };
  }
  const client = createClient<GatewayPaths>({ baseUrl: base, headers: { authorization: `Bearer ${token}` } });
  let answer;
  try {
    answer = await client.POST('/v1/workflow-names', { body: { names: [] } });
  } catch {
    lines.push({
      ok: false,
      text: `The gateway refused the authenticated request from this page (CORS): to fix it, ${corsHint()}, and allow the Authorization header.`,
    });
    return { ok: false, lines };
  }
  if (answer.response.ok) {
    lines.push({ ok: true, text: 'The token is accepted and has the read scope: payloads can be shown.' });
    return { ok: true, lines };
  }
  const error = errorFromAnswer(answer.response.status, answer.error, 'The gateway');
  if (answer.response.status === 401) {
    lines.push({ ok: false, text: `The gateway refused the token (bad or unknown token): ${error.message}` });
  } else if (answer.response.status === 403) {
    lines.push({ ok: false, text: `The token lacks a scope: ${error.message}` });
  } else {
    lines.push({ ok: false, text: `The authenticated read failed: ${error.message}${error.code === null ? '' : ` [${error.code}]`}` });
  }
  return { ok: false, lines };
}

function GatewayForm({ dataPlane }: { dataPlane: DataPlane }): ReactNode {
  useGatewaysVersion();
  const own = readGateways()[dataPlane.id];
  const effective = gatewayFor(dataPlane.id);
  const [url, setUrl] = useState(own?.url ?? '');
  const [token, setToken] = useState(own?.token ?? '');
  const [remember, setRemember] = useState(own?.remember ?? false);
  const [saved, setSaved] = useState(false);
  const test = useMutation({ mutationFn: () => testGateway(url, token) });
  const save = (event: SubmitEvent): void => {
    event.preventDefault();
    saveGateway(dataPlane.id, { url: url.trim(), token: token.trim(), remember });
    setSaved(true);
    test.mutate();
  };
  const id = (field: string): string => `gw-${field}-${dataPlane.id}`;
  return (
    <form onSubmit={save} className="stack gateway-form" aria-label={`Gateway of ${dataPlane.name}`}>
      <p className="muted">
        Kept in this browser only and never sent to the control plane: the URL on this device, the token for this tab unless you ask to
        remember it.
        {own === undefined && effective !== undefined
          ? ` Until you set one, the gateway for any data plane applies (${effective.url}).`
          : ''}
      </p>
      <div className="field">
        <label htmlFor={id('url')}>Gateway URL</label>
        <input
          id={id('url')}
          type="url"
          required
          value={url}
          placeholder="https://gateway.internal.example.com"
          onChange={(e) => {
            setUrl(e.target.value);
            setSaved(false);
          }}
        />
      </div>
      <div className="field">
        <label htmlFor={id('token')}>Gateway token</label>
        <input
          id={id('token')}
          type="password"
          autoComplete="off"
          value={token}
          placeholder="a token with the read scope"
          onChange={(e) => {
            setToken(e.target.value);
            setSaved(false);
          }}
        />
      </div>
      <label className="check">
        <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
        Remember the token on this device
      </label>
      <div className="actions">
        <button type="submit">Save and test</button>
        <button type="button" className="secondary" disabled={url.trim() === '' || test.isPending} onClick={() => test.mutate()}>
          Test connection
        </button>
        {own === undefined ? null : (
          <button
            type="button"
            className="secondary"
            onClick={() => {
              removeGateway(dataPlane.id);
              setUrl('');
              setToken('');
              setSaved(false);
              test.reset();
            }}
          >
            Forget
          </button>
        )}
      </div>
      {saved ? (
        <p className="muted" role="status">
          Saved in this browser.
        </p>
      ) : null}
      {test.isPending ? <Loading what="the connection test" /> : null}
      {test.error === null ? null : <ErrorMessage error={test.error} title="The test failed" />}
      {test.data === undefined ? null : (
        <div
          className={test.data.ok ? 'verified ok' : 'verified broken'}
          role={test.data.ok ? 'status' : 'alert'}
          aria-label="Connection test"
        >
          <ul>
            {test.data.lines.map((line) => (
              <li key={line.text}>
                {line.ok ? '✓' : '✗'} {line.text}
              </li>
            ))}
          </ul>
        </div>
      )}
    </form>
  );
}

function Workers({ project, dataPlane }: { project: string; dataPlane: DataPlane }): ReactNode {
  const workers = useQuery({
    queryKey: ['data-plane-workers', project, dataPlane.id],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/data-planes/{id}/workers', { params: { path: { project, id: dataPlane.id } }, signal })),
    refetchInterval: 10_000,
  });
  if (workers.isPending) return <Loading what="workers" />;
  if (workers.error !== null) return <ErrorMessage error={workers.error} title="Workers could not be listed" />;
  const { workers: list, workflowVersions } = workers.data;
  const connected = list.filter((w) => w.connected).length;
  return (
    <>
      <h3>
        Workers <span className="muted">({connected} connected)</span>
      </h3>
      {list.length === 0 ? (
        <p className="muted">No worker has connected in the last 7 days.</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`Workers of ${dataPlane.name}`}>
          <table aria-label={`Workers of ${dataPlane.name}`}>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col">State</th>
                <th scope="col">SDK</th>
                <th scope="col">Slots</th>
                <th scope="col">Workflow versions</th>
                <th scope="col">Connected</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {list.map((w) => (
                <tr key={w.workerId}>
                  <td className="mono">{w.workerId}</td>
                  <td>
                    <span className={`badge ${w.connected ? 'status-completed' : 'status-cancelled'}`}>
                      {w.connected ? 'connected' : w.disconnectedAt === null ? 'not heard from' : 'disconnected'}
                    </span>
                  </td>
                  <td>
                    {w.sdkVersion} <span className="muted">(protocol {w.protocolVersion})</span>
                  </td>
                  <td>{w.slots}</td>
                  <td>{w.workflows}</td>
                  <td>
                    <Time at={w.connectedAt} />
                  </td>
                  <td>
                    <Time at={w.lastSeenAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>Workflow versions announced</h3>
      {workflowVersions.length === 0 ? (
        <p className="muted">No worker has announced a workflow version.</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`Workflow versions announced in ${dataPlane.name}`}>
          <table aria-label={`Workflow versions announced in ${dataPlane.name}`}>
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Version</th>
                <th scope="col">Task queue</th>
                <th scope="col">First seen</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {workflowVersions.map((v) => (
                <tr key={`${v.name}@${v.version}`}>
                  <td>{v.name}</td>
                  <td className="mono">{v.version}</td>
                  <td>{v.taskQueue}</td>
                  <td>
                    <Time at={v.firstSeenAt} />
                  </td>
                  <td>
                    <Time at={v.lastSeenAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function DataPlanePanel({ project, dataPlane }: { project: string; dataPlane: DataPlane }): ReactNode {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const revoke = useMutation({
    mutationFn: () => unwrap(cp.DELETE('/v1/projects/{project}/data-planes/{id}', { params: { path: { project, id: dataPlane.id } } })),
    onSuccess: () => {
      setConfirming(false);
      void queryClient.invalidateQueries({ queryKey: ['data-planes', project] });
    },
  });
  const headingId = `dp-${dataPlane.id}`;
  return (
    <section className="panel" aria-labelledby={headingId}>
      <div className="title-row">
        <h2 id={headingId}>{dataPlane.name}</h2>
        {dataPlane.revokedAt === null ? (
          <span className="badge status-completed">active</span>
        ) : (
          <span className="badge status-failed">revoked</span>
        )}
      </div>
      <dl className="facts">
        <dt>ID</dt>
        <dd className="mono">{dataPlane.id}</dd>
        <dt>Registered</dt>
        <dd>
          <Time at={dataPlane.createdAt} />
        </dd>
        {dataPlane.revokedAt === null ? null : (
          <>
            <dt>Revoked</dt>
            <dd>
              <Time at={dataPlane.revokedAt} />
            </dd>
          </>
        )}
      </dl>
      <h3>Gateway (this browser)</h3>
      <GatewayForm dataPlane={dataPlane} />
      <Workers project={project} dataPlane={dataPlane} />
      {dataPlane.revokedAt !== null ? null : (
        <div className="actions danger-zone">
          {confirming ? (
            <>
              <p>
                Revoking ends the credential of {dataPlane.name} at once: its workers' streams close and its gateway's calls are refused.
              </p>
              <button type="button" className="danger" disabled={revoke.isPending} onClick={() => revoke.mutate()}>
                Revoke {dataPlane.name} now
              </button>
              <button type="button" className="secondary" onClick={() => setConfirming(false)}>
                Keep it
              </button>
            </>
          ) : (
            <button type="button" className="secondary" onClick={() => setConfirming(true)}>
              Revoke {dataPlane.name}…
            </button>
          )}
          {revoke.error === null ? null : <ErrorMessage error={revoke.error} title="The data plane could not be revoked" />}
        </div>
      )}
    </section>
  );
}

function DataPlanesPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const dataPlanes = useQuery({
    queryKey: ['data-planes', project],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/data-planes', { params: { path: { project } }, signal })),
  });
  return (
    <>
      <h1>Data planes</h1>
      {dataPlanes.isPending ? <Loading what="data planes" /> : null}
      {dataPlanes.error === null ? null : <ErrorMessage error={dataPlanes.error} title="Data planes could not be listed" />}
      {dataPlanes.isSuccess && dataPlanes.data.dataPlanes.length === 0 ? (
        <p>
          This project has no data plane. Register one with <code>cairn data-planes create</code>.
        </p>
      ) : null}
      {(dataPlanes.data?.dataPlanes ?? []).map((dp) => (
        <DataPlanePanel key={dp.id} project={project} dataPlane={dp} />
      ))}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/data-planes')({ component: DataPlanesPage });
