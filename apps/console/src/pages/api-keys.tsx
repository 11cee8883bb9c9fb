// API keys of the project: list (never the secrets), create with a role (the secret is shown once,
// with a copy button) and revoke. Only an admin key may manage keys; other roles see why not.
import { useState, type SubmitEvent, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { createLazyRoute } from '@tanstack/react-router';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { ErrorMessage, Loading, Time } from '../components/common.js';
import { projectRoute } from '../routes/root.js';

type ApiKey = Schemas['ApiKey'];

/** The roles a key can have, and what each may do (apps/control-plane/src/auth/permissions.ts). */
const ROLES = [
  { role: 'viewer', can: 'read runs, workflows, schedules, data planes and usage' },
  { role: 'operator', can: 'as viewer, and cancel, terminate and fork runs; pause, resume, trigger and backfill schedules' },
  { role: 'developer', can: 'as operator, and register workflows and change schedules' },
  { role: 'auditor', can: 'as viewer, and read and verify the audit log' },
  { role: 'admin', can: 'everything: keys, data planes, quotas and the audit log too' },
] as const;
type Role = (typeof ROLES)[number]['role'];

function NewSecret({ secret, name, onDone }: { secret: string; name: string; onDone: () => void }): ReactNode {
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <section className="panel secret" aria-labelledby="secret-heading">
      <h2 id="secret-heading">API key {name} created</h2>
      <p>
        <strong>Copy the secret now: it is shown this once.</strong> Cairn keeps only its hash.
      </p>
      <div className="actions">
        <input aria-label="New API key secret" readOnly value={secret} className="mono wide" onFocus={(e) => e.target.select()} />
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          Done
        </button>
      </div>
      <p role="status" className="muted">
        {copied === 'yes'
          ? 'Copied to the clipboard.'
          : copied === 'failed'
            ? 'The browser refused the clipboard: select the secret and copy it.'
            : ''}
      </p>
    </section>
  );
}

function ApiKeysPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [expires, setExpires] = useState('');
  const [confirming, setConfirming] = useState<string | null>(null);
  const keys = useQuery({
    queryKey: ['api-keys', project],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/projects/{project}/api-keys', { params: { path: { project } }, signal })),
  });
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        cp.POST('/v1/projects/{project}/api-keys', {
          params: { path: { project } },
          body: { name: name.trim(), role, ...(expires === '' ? {} : { expiresAt: new Date(`${expires}T23:59:59Z`).toISOString() }) },
        }),
      ),
    onSuccess: () => {
      setName('');
      setExpires('');
      void queryClient.invalidateQueries({ queryKey: ['api-keys', project] });
    },
  });
  const revoke = useMutation({
    mutationFn: (key: ApiKey) =>
      unwrap(cp.DELETE('/v1/projects/{project}/api-keys/{keyId}', { params: { path: { project, keyId: key.id } } })),
    onSuccess: () => {
      setConfirming(null);
      void queryClient.invalidateQueries({ queryKey: ['api-keys', project] });
    },
  });
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    create.mutate();
  };
  const rows = keys.data?.apiKeys ?? [];
  return (
    <>
      <h1>API keys</h1>
      {create.data === undefined ? null : (
        <NewSecret secret={create.data.secret} name={create.data.apiKey.name} onDone={() => create.reset()} />
      )}
      <section aria-labelledby="create-heading">
        <h2 id="create-heading">Create a key</h2>
        <form className="filters" onSubmit={submit} aria-label="Create an API key">
          <div className="field">
            <label htmlFor="key-name">Name</label>
            <input id="key-name" required value={name} onChange={(e) => setName(e.target.value)} placeholder="ci-deploy" />
          </div>
          <div className="field">
            <label htmlFor="key-role">Role</label>
            <select id="key-role" value={role} onChange={(e) => setRole(e.target.value as Role)} aria-describedby="key-role-help">
              {ROLES.map((r) => (
                <option key={r.role} value={r.role}>
                  {r.role}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="key-expires">Expires after (optional, UTC day)</label>
            <input id="key-expires" type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />
          </div>
          <div className="actions">
            <button type="submit" disabled={create.isPending || name.trim() === ''}>
              Create key
            </button>
          </div>
          <p id="key-role-help" className="muted full">
            A {role} key may {ROLES.find((r) => r.role === role)?.can}.
          </p>
        </form>
        {create.error === null ? null : <ErrorMessage error={create.error} title="The key could not be created" />}
      </section>
      <h2>Keys</h2>
      {keys.isPending ? <Loading what="API keys" /> : null}
      {keys.error === null ? null : <ErrorMessage error={keys.error} title="API keys could not be listed" />}
      {revoke.error === null ? null : <ErrorMessage error={revoke.error} title="The key could not be revoked" />}
      {rows.length === 0 ? null : (
        <table aria-label="API keys">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Prefix</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((k) => (
              <tr key={k.id}>
                <th scope="row">{k.name}</th>
                <td>
                  {k.role}
                  {k.organizationWide ? <span className="muted"> (organisation-wide)</span> : null}
                </td>
                <td className="mono">{k.prefix}…</td>
                <td>
                  <Time at={k.createdAt} />
                </td>
                <td>
                  <Time at={k.lastUsedAt} />
                </td>
                <td>
                  <Time at={k.expiresAt} />
                </td>
                <td>
                  {k.revokedAt === null ? (
                    <span className="badge status-completed">active</span>
                  ) : (
                    <span className="badge status-failed">revoked</span>
                  )}
                </td>
                <td className="actions">
                  {k.revokedAt !== null ? null : confirming === k.id ? (
                    <>
                      <button type="button" className="danger" disabled={revoke.isPending} onClick={() => revoke.mutate(k)}>
                        Revoke {k.name} now
                      </button>
                      <button type="button" className="secondary" onClick={() => setConfirming(null)}>
                        Keep it
                      </button>
                    </>
                  ) : (
                    <button type="button" className="secondary" aria-label={`Revoke ${k.name}`} onClick={() => setConfirming(k.id)}>
                      Revoke…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/api-keys')({ component: ApiKeysPage });
