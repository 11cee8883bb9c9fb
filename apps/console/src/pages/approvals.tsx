// The approvals inbox: every run waiting on a human (suspended on a ctx.approval), across
// workflows, newest first. The list is metadata from the control plane (one indexed query,
// waiting=approval); each approval's context (the run's input and what it recorded before it
// waited) is read by this browser from the run's gateway, and the answer (approve or reject, with a
// comment) goes to the gateway too: comments never reach the control plane.
import { useEffect, useState, type SubmitEvent, type ReactNode } from 'react';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap, type Run } from '../api/control-plane.js';
import { gatewayClient, unwrapGateway } from '../api/gateway.js';
import { ErrorMessage, JsonView, Loading, Time } from '../components/common.js';
import { useGatewaysVersion } from '../gateways.js';
import { projectRoute } from '../routes/root.js';

const route = getRouteApi('/p/$project/approvals');

const PAGE = 50;

/**
 * The approval a run waits for, from its signal name: `approval.<name>`, or
 * `approval.<name>.<32 hex digits>` when ctx.approval was given a key (the digest of the key).
 */
export function parseApprovalSignal(signal: string): { name: string; keyed: boolean } | null {
  const match = /^approval\.(.+?)(\.[0-9a-f]{32})?$/.exec(signal);
  if (match === null) return null;
  return { name: match[1]!, keyed: match[2] !== undefined };
}

/** The run's input and the values it recorded before it waited, from its gateway. */
function ApprovalContext({ run }: { run: Run }): ReactNode {
  const gateways = useGatewaysVersion();
  const journal = useQuery({
    queryKey: ['gateway', gateways, run.dataPlaneId, 'journal', run.id, run.updatedAt],
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(run.dataPlaneId);
      return unwrapGateway(url, client.GET('/v1/runs/{id}/journal', { params: { path: { id: run.id } }, signal }));
    },
  });
  if (journal.error !== null) return <ErrorMessage error={journal.error} title="The approval's context could not be read" />;
  if (journal.data === undefined) return <Loading what="the approval's context" />;
  const recorded = journal.data.entries.filter((e) => e.status !== 'waiting' && e.endedAt !== null);
  return (
    <div className="panels">
      <section className="panel" aria-label="Input">
        <h3>Input</h3>
        <JsonView value={journal.data.input} label={`Input of run ${run.id}`} />
      </section>
      <section className="panel" aria-label="Recorded before the wait">
        <h3>Recorded before the wait</h3>
        {recorded.length === 0 ? (
          <p className="muted">Nothing: the run asked first.</p>
        ) : (
          <ol className="recorded">
            {recorded.map((e) => (
              <li key={`${e.position}-${e.attempt}`}>
                <span className="muted">
                  #{e.position} {e.kind}
                </span>{' '}
                <strong>{e.name}</strong>
                {e.error === undefined ? (
                  <JsonView value={e.value} label={`Value recorded by ${e.kind} ${e.name}`} />
                ) : (
                  <p className="error">
                    {e.error.name}: {e.error.message}
                  </p>
                )}
              </li>
            ))}
          </ol>
        )}
      </section>
    </div>
  );
}

function AnswerForm({ run, name, keyed, onAnswered }: { run: Run; name: string; keyed: boolean; onAnswered: (approved: boolean) => void }) {
  const [comment, setComment] = useState('');
  const [by, setBy] = useState(() => sessionStorage.getItem('cairn.approver') ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const answer = async (approved: boolean): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const { client, url } = gatewayClient(run.dataPlaneId);
      const fields = { ...(comment.trim() === '' ? {} : { comment: comment.trim() }), ...(by.trim() === '' ? {} : { by: by.trim() }) };
      if (by.trim() !== '') sessionStorage.setItem('cairn.approver', by.trim());
      // A keyed approval is answered under its full signal name: the key itself stays with whoever asked.
      const call = keyed
        ? client.POST('/v1/runs/{id}/signals/{name}', {
            params: { path: { id: run.id, name: run.waitingSignal! } },
            body: { approved, ...fields },
          })
        : approved
          ? client.POST('/v1/runs/{id}/approvals/{name}/approve', { params: { path: { id: run.id, name } }, body: fields })
          : client.POST('/v1/runs/{id}/approvals/{name}/reject', { params: { path: { id: run.id, name } }, body: fields });
      await unwrapGateway(url, call);
      onAnswered(approved);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    void answer(true);
  };
  const id = run.id;
  return (
    <form onSubmit={submit} className="stack" aria-label={`Answer ${name}`}>
      <div className="field">
        <label htmlFor={`by-${id}`}>Your name (optional)</label>
        <input id={`by-${id}`} value={by} onChange={(e) => setBy(e.target.value)} autoComplete="name" />
      </div>
      <div className="field">
        <label htmlFor={`comment-${id}`}>Comment</label>
        <textarea id={`comment-${id}`} value={comment} onChange={(e) => setComment(e.target.value)} rows={3} />
      </div>
      <div className="actions">
        <button type="submit" disabled={busy}>
          Approve
        </button>
        <button type="button" className="danger" disabled={busy} onClick={() => void answer(false)}>
          Reject
        </button>
      </div>
      {error === null ? null : <ErrorMessage error={error} title="The answer was not sent" />}
    </form>
  );
}

function ApprovalCard({ run, project, onAnswered }: { run: Run; project: string; onAnswered: (approved: boolean) => void }): ReactNode {
  const approval = parseApprovalSignal(run.waitingSignal ?? '');
  const headingId = `approval-${run.id}`;
  return (
    <article className="panel approval" aria-labelledby={headingId}>
      <h2 id={headingId}>
        {approval?.name ?? run.waitingSignal} <span className="muted">in</span> {run.workflowName}
        <span className="muted">@{run.workflowVersion}</span>
      </h2>
      <dl className="facts">
        <dt>Run</dt>
        <dd>
          <Link to="/p/$project/runs/$runId" params={{ project, runId: run.id }} className="mono">
            {run.id}
          </Link>
        </dd>
        <dt>Waiting since</dt>
        <dd>
          <Time at={run.updatedAt} />
        </dd>
        {run.deadlineAt === null ? null : (
          <>
            <dt>Run deadline</dt>
            <dd>
              <Time at={run.deadlineAt} />
            </dd>
          </>
        )}
        {approval?.keyed === true ? (
          <>
            <dt>Key</dt>
            <dd className="muted">given in code; answered under its digest</dd>
          </>
        ) : null}
      </dl>
      <ApprovalContext run={run} />
      {approval === null ? null : <AnswerForm run={run} name={approval.name} keyed={approval.keyed} onAnswered={onAnswered} />}
    </article>
  );
}

function ApprovalsPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const search = route.useSearch();
  const navigate = route.useNavigate();
  const queryClient = useQueryClient();
  const [workflow, setWorkflow] = useState(search.workflow ?? '');
  useEffect(() => setWorkflow(search.workflow ?? ''), [search.workflow]);
  const [answered, setAnswered] = useState<Array<{ runId: string; approved: boolean }>>([]);
  const approvals = useInfiniteQuery({
    queryKey: ['approvals', project, search],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam, signal }) =>
      unwrap(
        cp.GET('/v1/projects/{project}/runs', {
          params: {
            path: { project },
            query: {
              waiting: 'approval',
              limit: String(PAGE),
              ...(search.workflow === undefined ? {} : { workflow: search.workflow }),
              ...(pageParam === undefined ? {} : { cursor: pageParam }),
            },
          },
          signal,
        }),
      ),
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    refetchInterval: 5_000,
  });
  const done = new Set(answered.map((a) => a.runId));
  const runs = (approvals.data?.pages.flatMap((p) => p.runs) ?? []).filter((r) => !done.has(r.id));
  const onAnswered = (runId: string) => (approved: boolean) => {
    setAnswered((list) => [{ runId, approved }, ...list.filter((a) => a.runId !== runId)].slice(0, 10));
    void queryClient.invalidateQueries({ queryKey: ['approvals', project] });
  };
  const filter = (event: SubmitEvent): void => {
    event.preventDefault();
    void navigate({ search: workflow.trim() === '' ? {} : { workflow: workflow.trim() } });
  };
  return (
    <>
      <div className="title-row">
        <h1>Approvals</h1>
        <span className="live on" role="status">
          Live
        </span>
      </div>
      <p className="muted">
        Runs waiting for a human. Their context and your answer go between this browser and each run&apos;s gateway; the control plane sees
        only that a run waits and when it was answered.
      </p>
      <form className="filters" onSubmit={filter} aria-label="Filter approvals">
        <div className="field">
          <label htmlFor="approvals-workflow">Workflow</label>
          <input id="approvals-workflow" value={workflow} onChange={(e) => setWorkflow(e.target.value)} />
        </div>
        <div className="actions">
          <button type="submit">Apply</button>
        </div>
      </form>
      <div role="status" aria-live="polite">
        {answered.length === 0 ? null : (
          <ul className="notice answered">
            {answered.map((a) => (
              <li key={a.runId}>
                {a.approved ? 'Approved' : 'Rejected'}: run{' '}
                <Link to="/p/$project/runs/$runId" params={{ project, runId: a.runId }} className="mono">
                  {a.runId}
                </Link>{' '}
                goes on.
              </li>
            ))}
          </ul>
        )}
      </div>
      {approvals.error === null ? null : <ErrorMessage error={approvals.error} title="Approvals could not be listed" />}
      {approvals.isPending ? <Loading what="approvals" /> : null}
      {approvals.isSuccess && runs.length === 0 ? <p>No run is waiting for an approval.</p> : null}
      <div className="stack">
        {runs.map((run) => (
          <ApprovalCard key={run.id} run={run} project={project} onAnswered={onAnswered(run.id)} />
        ))}
      </div>
      {approvals.hasNextPage ? (
        <div className="actions">
          <button
            type="button"
            className="secondary"
            onClick={() => void approvals.fetchNextPage()}
            disabled={approvals.isFetchingNextPage}
          >
            Load more
          </button>
        </div>
      ) : null}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/approvals')({ component: ApprovalsPage });
