// The audit log: administrative actions and run transitions, newest first, paged with a cursor,
// and the chain verification said plainly (intact, or where and how it broke). The verification
// here is the control plane checking itself; the page says how to check without trusting it.
import { useEffect, useState, type SubmitEvent, type ReactNode } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { ErrorMessage, Loading, Time } from '../components/common.js';
import { projectRoute } from '../routes/root.js';
import { validateAuditSearch, type AuditSearch } from '../routes/pages-search.js';

const route = getRouteApi('/p/$project/audit');

type Verification = Schemas['AuditVerification'];

/** What each way of breaking means, for someone who has not read docs/audit.md. */
const BREAKS: Record<Extract<Verification, { ok: false }>['broken']['reason'], string> = {
  hash_mismatch: 'an entry was changed after it was sealed: its hash does not match its content and the hash before it',
  missing_entry: 'an entry is missing: a position in the chain has no entry',
  out_of_order: 'entries are out of order: positions do not follow each other',
  head_mismatch: "the chain's recorded head does not match its last entry",
  truncated: 'the chain was cut: it ends before the position its head or a checkpoint records',
  checkpoint_mismatch: 'the chain no longer contains the newest signed checkpoint: the history it signed was rewritten',
  checkpoint_rejected: "a checkpoint's signature does not verify with the control plane's keys",
};

const short = (hash: string): string => `${hash.slice(0, 12)}…`;

/** Saves a signed checkpoint as the JSON file `cairn audit verify --checkpoint FILE` reads. */
function download(name: string, checkpoint: unknown): void {
  const url = URL.createObjectURL(new Blob([`${JSON.stringify(checkpoint, null, 2)}\n`], { type: 'application/json' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

function VerificationResult({ result }: { result: Verification }): ReactNode {
  const checkpoint =
    result.checkpoint === null ? (
      <>No signed checkpoint yet (or the control plane has no signing key): only the hashes were checked.</>
    ) : (
      <>
        The chain contains the newest signed checkpoint: position {result.checkpoint.position}, hash{' '}
        <code title={result.checkpoint.hash}>{short(result.checkpoint.hash)}</code>, signed <Time at={result.checkpoint.signedAt} /> by key{' '}
        <code>{result.checkpoint.keyId}</code>.
      </>
    );
  if (result.ok) {
    return (
      <div className="verified ok" role="status">
        <p>
          <strong>✓ The audit chain is intact.</strong> {result.entries} entr{result.entries === 1 ? 'y' : 'ies'} checked
          {result.head === null ? (
            '; the chain is empty.'
          ) : (
            <>
              , every hash recomputed up to the head at position {result.head.position} (
              <code title={result.head.hash}>{short(result.head.hash)}</code>).
            </>
          )}
        </p>
        <p>{checkpoint}</p>
      </div>
    );
  }
  const { broken } = result;
  return (
    <div className="verified broken" role="alert">
      <p>
        <strong>✗ The audit chain is broken at position {broken.position}</strong>
        {broken.entryId === null ? '' : ` (entry ${broken.entryId})`}: {BREAKS[broken.reason]}.
      </p>
      <p>
        {broken.detail} <span className="muted">[{broken.reason}]</span>
      </p>
      {broken.expectedHash === undefined ? null : (
        <p>
          Expected hash <code>{broken.expectedHash}</code>, stored <code>{broken.storedHash ?? 'none'}</code>.
        </p>
      )}
      <p>
        {result.entries} entr{result.entries === 1 ? 'y' : 'ies'} checked. {checkpoint}
      </p>
    </div>
  );
}

/** The signed checkpoints of the chain and, when it was pruned, where it now starts. */
function Checkpoints({ project }: { project: string }): ReactNode {
  const queryClient = useQueryClient();
  const sign = useMutation({
    mutationFn: () => unwrap(cp.POST('/v1/projects/{project}/audit/checkpoints', { params: { path: { project } } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ['audit-checkpoints', project] }),
  });
  const checkpoints = useQuery({
    queryKey: ['audit-checkpoints', project],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/audit/checkpoints', { params: { path: { project }, query: { limit: '5' } }, signal })),
  });
  const chain = useQuery({
    queryKey: ['audit-anchor', project],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/audit/chain', { params: { path: { project }, query: { limit: '1' } }, signal })),
  });
  const anchor = chain.data?.anchor ?? null;
  return (
    <>
      <h3>Signed checkpoints</h3>
      <p className="muted">
        The control plane signs the chain's head every hour when it moved, and on demand. A checkpoint kept outside Cairn is what makes a
        rewritten or truncated history detectable later.
      </p>
      <div className="actions">
        <button type="button" className="secondary" disabled={sign.isPending} onClick={() => sign.mutate()}>
          Sign a checkpoint now
        </button>
      </div>
      {sign.error === null ? null : <ErrorMessage error={sign.error} title="No checkpoint was signed" />}
      {sign.data === undefined ? null : (
        <p role="status" className="notice">
          Checkpoint signed at position {sign.data.checkpoint.position} ({sign.data.checkpoint.entries} entries). Download it and keep it
          outside Cairn; later, <code>cairn audit verify --checkpoint FILE --public-key KEY</code> checks the chain still contains it.
        </p>
      )}
      {checkpoints.isPending ? <Loading what="checkpoints" /> : null}
      {checkpoints.error === null ? null : <ErrorMessage error={checkpoints.error} title="Checkpoints could not be listed" />}
      {checkpoints.data !== undefined && checkpoints.data.checkpoints.length === 0 ? (
        <p>No checkpoint is signed yet (the control plane signs one within the hour, or has no signing key).</p>
      ) : null}
      {checkpoints.data === undefined || checkpoints.data.checkpoints.length === 0 ? null : (
        <table aria-label="Signed checkpoints">
          <thead>
            <tr>
              <th scope="col">Position</th>
              <th scope="col">Entries</th>
              <th scope="col">Hash</th>
              <th scope="col">Signed</th>
              <th scope="col">Key</th>
              <th scope="col">Keep</th>
            </tr>
          </thead>
          <tbody>
            {checkpoints.data.checkpoints.map((c) => (
              <tr key={`${c.position}-${c.signedAt}`}>
                <td>{c.position}</td>
                <td>{c.entries}</td>
                <td>
                  <code title={c.hash}>{short(c.hash)}</code>
                </td>
                <td>
                  <Time at={c.signedAt} />
                </td>
                <td className="mono">{c.keyId}</td>
                <td>
                  <button
                    type="button"
                    className="link"
                    aria-label={`Download the checkpoint at position ${c.position}`}
                    onClick={() => download(`audit-checkpoint-${c.position}.json`, c)}
                  >
                    Download
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {chain.error === null ? null : <ErrorMessage error={chain.error} title="The chain's start could not be read" />}
      {anchor === null ? null : (
        <p className="notice">
          Pruned under the retention policy: positions 1 to {anchor.position} were deleted (the newest prune deleted {anchor.pruned} entries
          older than <Time at={anchor.prunedBefore} />, at <Time at={anchor.prunedAt} />
          ). The chain starts from the checkpoint signed <Time at={anchor.checkpoint.signedAt} /> by key{' '}
          <code>{anchor.checkpoint.keyId}</code> at position {anchor.position}.
        </p>
      )}
    </>
  );
}

function AuditPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const [draft, setDraft] = useState(search);
  useEffect(() => setDraft(search), [search]);
  const entries = useInfiniteQuery({
    queryKey: ['audit', project, search],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam, signal }) =>
      unwrap(
        cp.GET('/v1/projects/{project}/audit', {
          params: { path: { project }, query: { ...search, limit: '50', ...(pageParam === undefined ? {} : { cursor: pageParam }) } },
          signal,
        }),
      ),
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const verify = useMutation({
    mutationFn: () => unwrap(cp.POST('/v1/projects/{project}/audit/verify', { params: { path: { project } } })),
  });
  const apply = (event: SubmitEvent): void => {
    event.preventDefault();
    void navigate({ search: validateAuditSearch(draft as Record<string, unknown>) });
  };
  const rows = entries.data?.pages.flatMap((p) => p.entries) ?? [];
  const field = (key: keyof AuditSearch, label: string, hint: string): ReactNode => (
    <div className="field">
      <label htmlFor={`audit-${key}`}>{label}</label>
      <input
        id={`audit-${key}`}
        value={draft[key] ?? ''}
        placeholder={hint}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
      />
    </div>
  );
  return (
    <>
      <h1>Audit log</h1>
      <section aria-labelledby="verify-heading" className="panel">
        <h2 id="verify-heading">Chain verification</h2>
        <p className="muted">
          Entries are hash-chained; the control plane seals pending entries, recomputes every hash and checks that the chain still contains
          its newest signed checkpoint. This is the control plane checking itself: to check without trusting it, keep a checkpoint (
          <code>cairn audit checkpoint --out FILE</code>) and run <code>cairn audit verify --checkpoint FILE --public-key KEY</code>.
        </p>
        <button type="button" onClick={() => verify.mutate()} disabled={verify.isPending}>
          {verify.isPending ? 'Verifying…' : 'Verify the chain'}
        </button>
        {verify.error === null ? null : <ErrorMessage error={verify.error} title="The chain could not be verified" />}
        {verify.data === undefined ? null : <VerificationResult result={verify.data} />}
        <Checkpoints project={project} />
      </section>
      <h2>Entries</h2>
      <form className="filters" onSubmit={apply} aria-label="Filter audit entries">
        {field('action', 'Action', 'run.* or schedule.paused')}
        {field('targetType', 'Target type', 'run, api_key, schedule')}
        {field('targetId', 'Target ID', '')}
        <div className="actions">
          <button type="submit">Apply</button>
          <button type="button" className="secondary" onClick={() => void navigate({ search: {} })}>
            Clear
          </button>
        </div>
      </form>
      {entries.isPending ? <Loading what="audit entries" /> : null}
      {entries.error === null ? null : <ErrorMessage error={entries.error} title="The audit log could not be read" />}
      {entries.isSuccess && rows.length === 0 ? <p>No entry matches.</p> : null}
      {rows.length === 0 ? null : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Audit entries, scrollable">
          <table aria-label="Audit entries">
            <thead>
              <tr>
                <th scope="col">Position</th>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.id}>
                  <td>{e.position ?? <span className="muted">not sealed yet</span>}</td>
                  <td>
                    <Time at={e.occurredAt} />
                  </td>
                  <td>
                    {e.actor.type}
                    {e.actor.id === null ? null : <span className="mono muted"> {e.actor.id}</span>}
                  </td>
                  <td className="mono">{e.action}</td>
                  <td>
                    {e.target.type} <span className="mono">{e.target.id}</span>
                  </td>
                  <td className="wrap">
                    {Object.entries(e.metadata)
                      .filter(([, v]) => v !== null && v !== undefined)
                      .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
                      .join(', ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {entries.hasNextPage ? (
        <p>
          <button type="button" className="secondary" disabled={entries.isFetchingNextPage} onClick={() => void entries.fetchNextPage()}>
            {entries.isFetchingNextPage ? 'Loading…' : 'Load older entries'}
          </button>
        </p>
      ) : null}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/audit')({ component: AuditPage });
