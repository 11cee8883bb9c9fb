// What a user can do to a run: send a signal (its body checked in the browser against the
// signal's declared JSON Schema before anything is sent), answer the approval it waits for, cancel
// or terminate it, fork it from a journal position (with a new input, if given). Signals, approvals
// and a fork's new input go to the data plane's gateway (their bodies, comments and inputs are
// payloads); cancel, terminate and fork are control-plane operations on metadata, a fork's new
// input crossing only as the ID of the payload the gateway stored. The replay check against a newer version goes to the gateway (replay.tsx).
import { useEffect, useRef, useState, type SubmitEvent, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from '@tanstack/react-router';
import { Validator } from '@cfworker/json-schema';
import { cp, unwrap, type Run } from '../../api/control-plane.js';
import { gatewayClient, unwrapGateway } from '../../api/gateway.js';
import { ErrorMessage } from '../../components/common.js';
import { useGatewaysVersion } from '../../gateways.js';
import { PanelError } from './panel-error.js';
import { ReplayCheck } from './replay.js';
import type { TimelineCall } from './timeline.js';

export const FINAL = new Set(['completed', 'failed', 'cancelled', 'terminated', 'timed_out']);

/** `approval.<name>` or `approval.<name>.<32 hex digits of the key's HMAC>`: the approval a run waits for. */
export function approvalOf(waitingSignal: string | null): { name: string; keyed: boolean } | null {
  if (waitingSignal === null || !waitingSignal.startsWith('approval.')) return null;
  const rest = waitingSignal.slice('approval.'.length);
  const keyed = /\.[0-9a-f]{32}$/.exec(rest);
  return keyed === null ? { name: rest, keyed: false } : { name: rest.slice(0, keyed.index), keyed: true };
}

/** Keywords whose failure only says a nested part failed; the nested failure says what. */
const WRAPPERS = new Set(['properties', 'items', 'prefixItems', 'allOf', '$ref', 'false', 'dependentSchemas', 'then', 'else']);

/** Every problem of a signal body against its JSON Schema, each with where it is. */
export function schemaIssues(schema: Record<string, unknown>, value: unknown): string[] {
  const result = new Validator(schema, '2020-12', false).validate(value);
  if (result.valid) return [];
  return result.errors
    .filter((e) => !WRAPPERS.has(e.keyword))
    .map((e) => `${e.instanceLocation === '#' ? 'the body' : e.instanceLocation.slice(1)}: ${e.error}`);
}

/** A gateway 400 that lists the body's problems. */
class BodyIssues extends Error {
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
  }
}

function Issues({ title, issues }: { title: string; issues: readonly string[] }): ReactNode {
  return (
    <div role="alert" className="error">
      <strong>{title}</strong>
      <ul aria-label="Problems with the signal body">
        {issues.map((issue) => (
          <li key={issue}>{issue}</li>
        ))}
      </ul>
    </div>
  );
}

/**
 * One Idempotency-Key per thing the user means to send: sending the same content again (after an
 * error or a lost answer) reuses the key, so the gateway delivers it once; once it is delivered,
 * the next send is a new one. Random hex from getRandomValues, which works outside secure contexts.
 */
function useIdempotencyKey(): { keyFor: (content: string) => string; delivered: () => void } {
  const current = useRef<{ content: string; key: string } | null>(null);
  return {
    keyFor: (content) => {
      if (current.current?.content !== content) {
        const key = `console-${Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
        current.current = { content, key };
      }
      return current.current.key;
    },
    delivered: () => {
      current.current = null;
    },
  };
}

/** Said when the gateway stored the signal but could not tell the control plane yet. */
const PENDING = ' The control plane could not be told now; the gateway tells it once it answers, so do not send it again.';

function SignalForm({ run, final }: { run: Run; final: boolean }): ReactNode {
  const gateways = useGatewaysVersion();
  const queryClient = useQueryClient();
  const waiting = run.waitingSignal !== null && approvalOf(run.waitingSignal) === null ? run.waitingSignal : null;
  const schemas = useQuery({
    queryKey: ['gateway', gateways, run.dataPlaneId, 'schemas', run.workflowName],
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(run.dataPlaneId);
      return unwrapGateway(url, client.GET('/v1/workflows/{name}/schemas', { params: { path: { name: run.workflowName } }, signal }));
    },
    staleTime: 60_000,
  });
  const declared = schemas.data?.versions.find((v) => v.version === run.workflowVersion)?.signals ?? [];
  const [name, setName] = useState<string | null>(null);
  const signalName = name ?? waiting ?? declared[0]?.name ?? '';
  const [body, setBody] = useState('');
  const [issues, setIssues] = useState<string[] | null>(null);
  const schema = declared.find((s) => s.name === signalName)?.schema;
  const idempotency = useIdempotencyKey();
  const send = useMutation({
    mutationFn: async (value: unknown) => {
      const { client, url } = gatewayClient(run.dataPlaneId);
      const key = idempotency.keyFor(JSON.stringify([signalName, value ?? null]));
      const call = client.POST('/v1/runs/{id}/signals/{name}', {
        params: { path: { id: run.id, name: signalName }, header: { 'Idempotency-Key': key } },
        ...(value === undefined ? {} : { body: value }),
      });
      const answer = await call.catch(() => undefined);
      const listed = (answer?.error as { error?: { message?: string; issues?: Array<{ path: string; message: string }> } } | undefined)
        ?.error;
      if (answer?.response.status === 400 && listed?.issues !== undefined) {
        throw new BodyIssues(
          listed.message ?? 'The gateway refused the body',
          listed.issues.map((i) => `${i.path === '' ? 'the body' : i.path}: ${i.message}`),
        );
      }
      return unwrapGateway(url, call);
    },
    onSuccess: () => {
      idempotency.delivered();
      void queryClient.invalidateQueries({ queryKey: ['run'] });
    },
  });
  const submit = (event: SubmitEvent): void => {
    event.preventDefault();
    send.reset();
    let value: unknown;
    if (body.trim() !== '') {
      try {
        value = JSON.parse(body) as unknown;
      } catch (err) {
        setIssues([`the body is not JSON: ${(err as Error).message}`]);
        return;
      }
    }
    const found = schema === undefined ? [] : schemaIssues(schema, value ?? null);
    setIssues(found);
    // Keep the name shown once used: the run stops waiting for it when the signal lands.
    setName(signalName);
    if (found.length === 0) send.mutate(value);
  };
  return (
    <form className="panel stack" onSubmit={submit} aria-labelledby="signal-heading">
      <h3 id="signal-heading">Send a signal</h3>
      <label htmlFor="signal-name">Signal name</label>
      <input
        id="signal-name"
        list="signal-names"
        required
        value={signalName}
        onChange={(e) => {
          setName(e.target.value);
          setIssues(null);
        }}
      />
      <datalist id="signal-names">
        {declared.map((s) => (
          <option key={s.name} value={s.name} />
        ))}
      </datalist>
      <p className="muted" id="signal-schema-note">
        {schemas.error !== null
          ? 'The declared signals could not be read from the gateway; the gateway still checks the body.'
          : schema === undefined
            ? `No schema is declared for ${signalName === '' ? 'this signal' : signalName}: any JSON body (or none) is sent.`
            : 'The body is checked against the signal’s declared JSON Schema before it is sent, and again by the gateway.'}
        {waiting === null ? '' : ` The run waits for ${waiting}.`}
      </p>
      <label htmlFor="signal-body">Signal body (JSON)</label>
      <textarea
        id="signal-body"
        aria-describedby="signal-schema-note"
        spellCheck={false}
        value={body}
        onChange={(e) => {
          setBody(e.target.value);
          setIssues(null);
        }}
      />
      {schema === undefined ? null : (
        <details>
          <summary>Declared schema</summary>
          <pre className="json">{JSON.stringify(schema, null, 2)}</pre>
        </details>
      )}
      {issues !== null && issues.length > 0 ? (
        <Issues title="Not sent: the body does not match the signal's schema" issues={issues} />
      ) : null}
      {send.error instanceof BodyIssues ? (
        <Issues title={`The gateway refused the body: ${send.error.message}`} issues={send.error.issues} />
      ) : null}
      {send.error !== null && !(send.error instanceof BodyIssues) ? <PanelError error={send.error} what="signals" verb="send" /> : null}
      {send.data === undefined ? null : (
        <p role="status" className="notice">
          Signal {send.data.signal} {send.data.pending === true ? 'stored' : 'sent'} ({send.data.signalId}).
          {send.data.created ? '' : ' It was sent before (the same signal, answered again): nothing new was delivered.'}
          {send.data.pending === true ? PENDING : ''}
          {send.data.waiting === false
            ? ` The run waits for ${send.data.waitingFor ?? 'something else'} now; the signal is kept until it waits for ${send.data.signal}.`
            : ''}
        </p>
      )}
      <div className="actions">
        <button type="submit" disabled={send.isPending || signalName === '' || final}>
          Send signal
        </button>
        {final ? <span className="muted">The run has ended.</span> : null}
      </div>
    </form>
  );
}

function ApprovalForm({ run, approval, waiting }: { run: Run; approval: { name: string; keyed: boolean }; waiting: boolean }): ReactNode {
  const queryClient = useQueryClient();
  const [by, setBy] = useState('');
  const [comment, setComment] = useState('');
  const [key, setKey] = useState('');
  const idempotency = useIdempotencyKey();
  const answer = useMutation({
    mutationFn: (approved: boolean) => {
      const { client, url } = gatewayClient(run.dataPlaneId);
      const body = {
        ...(by.trim() === '' ? {} : { by: by.trim() }),
        ...(comment.trim() === '' ? {} : { comment }),
        ...(approval.keyed ? { key } : {}),
      };
      const params = {
        path: { id: run.id, name: approval.name },
        header: { 'Idempotency-Key': idempotency.keyFor(JSON.stringify([approved, body])) },
      };
      return unwrapGateway(
        url,
        approved
          ? client.POST('/v1/runs/{id}/approvals/{name}/approve', { params, body })
          : client.POST('/v1/runs/{id}/approvals/{name}/reject', { params, body }),
      );
    },
    onSuccess: () => {
      idempotency.delivered();
      void queryClient.invalidateQueries({ queryKey: ['run'] });
    },
  });
  const done = !waiting || (answer.data !== undefined && answer.data.waiting !== false);
  return (
    <form className="panel stack" onSubmit={(e) => e.preventDefault()} aria-labelledby="approval-heading">
      <h3 id="approval-heading">Approval: {approval.name}</h3>
      <p className="muted">
        {waiting ? 'The run is waiting for this answer.' : 'The run no longer waits for this answer.'} The comment goes to the data plane
        only.
      </p>
      {approval.keyed ? (
        <>
          <label htmlFor="approval-key">Approval key</label>
          <input id="approval-key" required value={key} onChange={(e) => setKey(e.target.value)} aria-describedby="approval-key-note" />
          <p className="muted" id="approval-key-note">
            This approval has a key (the one the workflow gave ctx.approval, such as an order ID); only its digest reaches the control
            plane.
          </p>
        </>
      ) : null}
      <label htmlFor="approval-by">Answered by</label>
      <input id="approval-by" value={by} onChange={(e) => setBy(e.target.value)} autoComplete="name" />
      <label htmlFor="approval-comment">Comment</label>
      <textarea id="approval-comment" value={comment} onChange={(e) => setComment(e.target.value)} />
      {answer.error === null ? null : <PanelError error={answer.error} what="approvals" verb="answer" />}
      {answer.data === undefined ? null : (
        <p role="status" className="notice">
          {answer.data.approved ? 'Approved' : 'Rejected'}.{answer.data.pending === true ? PENDING : ''}
          {answer.data.waiting === false
            ? ` But the run waits for ${answer.data.waitingFor ?? 'something else'}, not ${answer.data.signal}: check the approval key.`
            : ''}
        </p>
      )}
      <div className="actions">
        <button type="button" disabled={answer.isPending || done || (approval.keyed && key === '')} onClick={() => answer.mutate(true)}>
          Approve
        </button>
        <button
          type="button"
          className="danger"
          disabled={answer.isPending || done || (approval.keyed && key === '')}
          onClick={() => answer.mutate(false)}
        >
          Reject
        </button>
      </div>
    </form>
  );
}

type Ending = 'cancel' | 'terminate';

const ENDING_TEXT: Record<Ending, { button: string; confirm: string; explain: string }> = {
  cancel: {
    button: 'Cancel run…',
    confirm: 'Confirm cancel',
    explain: 'The run is asked to stop; its compensations run, and its child runs are cancelled too.',
  },
  terminate: {
    button: 'Terminate run…',
    confirm: 'Confirm terminate',
    explain: 'The run ends at once: no compensation runs, a worker holding it stops, and its child runs are terminated too.',
  },
};

function EndRun({ project, run }: { project: string; run: Run }): ReactNode {
  const queryClient = useQueryClient();
  const [asked, setAsked] = useState<Ending | null>(null);
  const keep = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asked !== null) keep.current?.focus();
  }, [asked]);
  const end = useMutation({
    mutationFn: (how: Ending) => {
      const params = { path: { project, id: run.id } };
      return unwrap(
        how === 'cancel'
          ? cp.POST('/v1/projects/{project}/runs/{id}/cancel', { params })
          : cp.POST('/v1/projects/{project}/runs/{id}/terminate', { params }),
      );
    },
    onSuccess: () => {
      setAsked(null);
      void queryClient.invalidateQueries({ queryKey: ['run'] });
    },
  });
  return (
    <div className="panel stack" role="group" aria-labelledby="end-heading">
      <h3 id="end-heading">Cancel or terminate</h3>
      {asked === null ? (
        <div className="actions">
          <button type="button" className="secondary" onClick={() => setAsked('cancel')} disabled={run.cancelRequested}>
            {ENDING_TEXT.cancel.button}
          </button>
          <button type="button" className="danger" onClick={() => setAsked('terminate')}>
            {ENDING_TEXT.terminate.button}
          </button>
        </div>
      ) : (
        <div role="alertdialog" aria-labelledby="end-confirm" className="confirm">
          <p id="end-confirm">
            {asked === 'cancel' ? 'Cancel' : 'Terminate'} run {run.id}? {ENDING_TEXT[asked].explain}
          </p>
          <div className="actions">
            <button type="button" className="danger" onClick={() => end.mutate(asked)} disabled={end.isPending}>
              {ENDING_TEXT[asked].confirm}
            </button>
            <button type="button" className="secondary" ref={keep} onClick={() => setAsked(null)}>
              Keep running
            </button>
          </div>
        </div>
      )}
      {run.cancelRequested ? <p className="muted">Cancellation was requested; the run is running its compensations.</p> : null}
      {end.error === null ? null : <ErrorMessage error={end.error} title="The control plane refused" />}
    </div>
  );
}

function ForkForm({
  project,
  run,
  calls,
  selected,
}: {
  project: string;
  run: Run;
  calls: readonly TimelineCall[];
  selected: number | undefined;
}): ReactNode {
  const navigate = useNavigate();
  const gateways = useGatewaysVersion();
  const [from, setFrom] = useState<string>(String(selected ?? Math.max(0, calls.length - 1)));
  const [version, setVersion] = useState('');
  const [input, setInput] = useState('');
  const [inputIssues, setInputIssues] = useState<string[]>([]);
  const [confirming, setConfirming] = useState(false);
  const back = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) back.current?.focus();
  }, [confirming]);
  const workflow = useQuery({
    queryKey: ['workflow', project, run.workflowName],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/workflows/{name}', { params: { path: { project, name: run.workflowName } }, signal })),
    staleTime: 60_000,
  });
  // The input schemas the data plane catalogued, to check a new input in the browser first.
  const schemas = useQuery({
    queryKey: ['gateway', gateways, run.dataPlaneId, 'schemas', run.workflowName],
    queryFn: ({ signal }) => {
      const { client, url } = gatewayClient(run.dataPlaneId);
      return unwrapGateway(url, client.GET('/v1/workflows/{name}/schemas', { params: { path: { name: run.workflowName } }, signal }));
    },
    staleTime: 60_000,
  });
  const position = Number(from);
  const valid = from.trim() !== '' && Number.isInteger(position) && position >= 0 && position <= calls.length;
  const kept = calls.filter((c) => c.position < position);
  const live = calls.filter((c) => c.position >= position);
  const newInput = input.trim() !== '';
  const fork = useMutation({
    mutationFn: async () => {
      // A new input is a payload: stored in the data plane through its gateway, the control plane
      // gets only the payload's ID.
      let inputPayloadId: string | undefined;
      if (newInput) {
        const { client, url } = gatewayClient(run.dataPlaneId);
        const stored = await unwrapGateway(
          url,
          client.POST('/v1/payloads', {
            // Checked again by the gateway as this fork's input.
            params: { query: { forkOf: run.id, ...(version === '' ? {} : { version }) } },
            body: JSON.parse(input) as unknown,
          }),
        );
        inputPayloadId = stored.payloadId;
      }
      try {
        return await unwrap(
          cp.POST('/v1/projects/{project}/runs/{id}/fork', {
            params: { path: { project, id: run.id } },
            body: {
              fromStep: position,
              ...(version === '' ? {} : { workflowVersion: version }),
              ...(inputPayloadId === undefined ? {} : { inputPayloadId }),
            },
          }),
        );
      } catch (err) {
        // The stored input would be orphaned: remove it again.
        if (inputPayloadId !== undefined) {
          const { client } = gatewayClient(run.dataPlaneId);
          await client.DELETE('/v1/payloads/{id}', { params: { path: { id: inputPayloadId } } }).catch(() => undefined);
        }
        throw err;
      }
    },
    onSuccess: (answer) => void navigate({ to: '/p/$project/runs/$runId', params: { project, runId: answer.run.id }, search: {} }),
  });
  const checkInput = (): string[] => {
    if (!newInput) return [];
    let value: unknown;
    try {
      value = JSON.parse(input) as unknown;
    } catch (err) {
      return [`the input is not JSON: ${(err as Error).message}`];
    }
    const target = version === '' ? run.workflowVersion : version;
    const schema = schemas.data?.versions.find((v) => v.version === target)?.input;
    return schema === undefined || schema === null
      ? []
      : schemaIssues(schema, value).map((issue) => issue.replace(/^the body/, 'the input'));
  };
  return (
    <form
      className="panel stack"
      aria-labelledby="fork-heading"
      onSubmit={(e) => {
        e.preventDefault();
        const issues = checkInput();
        setInputIssues(issues);
        if (valid && issues.length === 0) setConfirming(true);
      }}
    >
      <h3 id="fork-heading">Fork from a step</h3>
      <p className="muted">A new run whose journal keeps this run's calls before the step; from the step on it runs live.</p>
      <label htmlFor="fork-from">Fork from step (journal position)</label>
      <input
        id="fork-from"
        type="number"
        min={0}
        max={calls.length}
        value={from}
        onChange={(e) => {
          setFrom(e.target.value);
          setConfirming(false);
        }}
      />
      <label htmlFor="fork-version">Workflow version</label>
      <select
        id="fork-version"
        value={version}
        onChange={(e) => {
          setVersion(e.target.value);
          setConfirming(false);
        }}
      >
        <option value="">{run.workflowVersion} (this run's)</option>
        {(workflow.data?.workflow.versions ?? [])
          .filter((v) => v.version !== run.workflowVersion)
          .map((v) => (
            <option key={v.version} value={v.version}>
              {v.version}
              {v.deprecated ? ' (deprecated)' : ''}
            </option>
          ))}
      </select>
      {workflow.error === null ? null : <ErrorMessage error={workflow.error} title="The workflow's versions could not be listed" />}
      <label htmlFor="fork-input">New input (JSON)</label>
      <textarea
        id="fork-input"
        rows={3}
        aria-describedby="fork-input-note"
        value={input}
        onChange={(e) => {
          setInput(e.target.value);
          setInputIssues([]);
          setConfirming(false);
        }}
      />
      <p className="muted" id="fork-input-note">
        Empty keeps this run's input. A new one is stored in the data plane through its gateway (the token needs the admin scope); the
        control plane gets only its ID.
      </p>
      {inputIssues.length === 0 ? null : (
        <div role="alert" className="error">
          <strong>The input cannot be used</strong>
          <ul aria-label="Problems with the input">
            {inputIssues.map((issue) => (
              <li key={issue}>{issue}</li>
            ))}
          </ul>
        </div>
      )}
      {!valid ? (
        <p className="error" role="alert">
          The step must be a journal position from 0 to {calls.length}.
        </p>
      ) : confirming ? (
        <div role="alertdialog" aria-labelledby="fork-confirm-heading" className="confirm">
          <h4 id="fork-confirm-heading">
            Fork from step {position}
            {version === '' ? '' : ` onto version ${version}`}
            {newInput ? ' with a new input' : ''}?
          </h4>
          <div className="fork-plan">
            <div>
              <strong>Kept from the journal</strong>
              {kept.length === 0 ? (
                <p className="muted">Nothing: the whole run runs again.</p>
              ) : (
                <ul aria-label="Kept from the journal">
                  {kept.map((c) => (
                    <li key={c.position}>
                      {c.position}: {c.kind} {c.name}
                    </li>
                  ))}
                </ul>
              )}
            </div>
            <div>
              <strong>Run live</strong>
              <ul aria-label="Run live">
                {live.map((c) => (
                  <li key={c.position}>
                    {c.position}: {c.kind} {c.name}
                  </li>
                ))}
                <li>and every call after them</li>
              </ul>
            </div>
          </div>
          <div className="actions">
            <button type="button" onClick={() => fork.mutate()} disabled={fork.isPending}>
              Confirm fork
            </button>
            <button type="button" className="secondary" ref={back} onClick={() => setConfirming(false)}>
              Back
            </button>
          </div>
        </div>
      ) : null}
      {fork.error === null ? null : <ErrorMessage error={fork.error} title="The fork was refused" />}
      {confirming ? null : (
        <div className="actions">
          <button type="submit" disabled={!valid}>
            Fork…
          </button>
        </div>
      )}
    </form>
  );
}

export function RunActions({
  project,
  run,
  calls,
  selected,
}: {
  project: string;
  run: Run;
  calls: readonly TimelineCall[];
  selected: number | undefined;
}): ReactNode {
  const final = FINAL.has(run.status);
  const approval = run.status === 'suspended' ? approvalOf(run.waitingSignal) : null;
  // Forms used on this page stay (with their answer) after the run moves on or ends.
  const [shownApproval, setShownApproval] = useState(approval);
  const [openedLive] = useState(!final);
  const approvalKey = approval === null ? null : `${approval.name}/${approval.keyed}`;
  useEffect(() => {
    if (approvalKey !== null) setShownApproval(approvalOf(run.waitingSignal));
  }, [approvalKey, run.waitingSignal]);
  return (
    <section aria-labelledby="actions-heading">
      <h2 id="actions-heading">Actions</h2>
      <div className="panels">
        {shownApproval === null ? null : (
          <ApprovalForm key={shownApproval.name} run={run} approval={shownApproval} waiting={approval?.name === shownApproval.name} />
        )}
        {final && !openedLive ? null : <SignalForm run={run} final={final} />}
        {final ? null : <EndRun project={project} run={run} />}
        <ForkForm key={selected ?? -1} project={project} run={run} calls={calls} selected={selected} />
        <ReplayCheck project={project} run={run} />
      </div>
    </section>
  );
}
