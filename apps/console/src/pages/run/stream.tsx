// The live text of the run's model calls, from the gateway's Server-Sent Events stream. The
// stream needs the gateway token as a Bearer header, which EventSource cannot send, so it is read
// with fetch and parsed by eventsource-parser; after a drop it resumes with Last-Event-ID, so no
// token is lost or shown twice.
import { useEffect, useState, type ReactNode } from 'react';
import { createParser } from 'eventsource-parser';
import { ApiError, errorFromAnswer } from '../../api/errors.js';
import { gatewayClient, type GatewaySchemas } from '../../api/gateway.js';
import { gatewayFor, useGatewaysVersion } from '../../gateways.js';
import { PanelError } from './panel-error.js';

interface CallText {
  readonly position: number;
  readonly name: string;
  readonly attempt: number;
  readonly text: string;
  readonly done: boolean;
}

type Phase = 'connecting' | 'open' | 'reconnecting' | 'ended';

const PHASE_TEXT: Record<Phase, string> = {
  connecting: 'Connecting to the gateway…',
  open: 'Streaming',
  reconnecting: 'Connection lost; resuming where it left off…',
  ended: 'The run ended',
};

/** The latest text per model call: a delta of a later attempt replaces an earlier attempt's text. */
function apply(calls: ReadonlyMap<number, CallText>, event: string, data: unknown): ReadonlyMap<number, CallText> {
  const next = new Map(calls);
  if (event === 'delta') {
    const d = data as GatewaySchemas['StreamDelta'];
    const prev = next.get(d.position);
    const same = prev !== undefined && prev.attempt === d.attempt;
    if (prev !== undefined && prev.attempt > d.attempt) return calls;
    next.set(d.position, { position: d.position, name: d.name, attempt: d.attempt, text: (same ? prev.text : '') + d.text, done: false });
  } else if (event === 'model-done') {
    const d = data as GatewaySchemas['StreamModelDone'];
    const prev = next.get(d.position);
    next.set(d.position, {
      position: d.position,
      name: d.name,
      attempt: d.attempt,
      text: prev?.attempt === d.attempt ? prev.text : '',
      done: true,
    });
  }
  return next;
}

export function LiveStream({ dataPlaneId, runId }: { dataPlaneId: string; runId: string }): ReactNode {
  const gateways = useGatewaysVersion();
  const [calls, setCalls] = useState<ReadonlyMap<number, CallText>>(new Map());
  const [phase, setPhase] = useState<Phase>('connecting');
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const stop = new AbortController();
    let lastEventId: string | undefined;
    let retryMs = 3_000;
    let ended = false;
    setCalls(new Map());
    setError(null);
    setPhase('connecting');
    const parser = createParser({
      onEvent: (message) => {
        if (message.id !== undefined) lastEventId = message.id;
        if (message.event === 'end') {
          ended = true;
          setPhase('ended');
          return;
        }
        if (message.event !== 'delta' && message.event !== 'model-done') return;
        let data: unknown;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        setCalls((current) => apply(current, message.event!, data));
      },
      onRetry: (ms) => {
        retryMs = ms;
      },
    });
    const wait = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        stop.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    const connect = async (): Promise<void> => {
      while (!stop.signal.aborted && !ended) {
        let url: string;
        let token: string;
        try {
          url = gatewayClient(dataPlaneId).url;
          token = gatewayFor(dataPlaneId)?.token ?? '';
        } catch (err) {
          setError(err);
          return;
        }
        parser.reset();
        try {
          const res = await fetch(`${url}/v1/runs/${encodeURIComponent(runId)}/stream`, {
            headers: {
              accept: 'text/event-stream',
              ...(token === '' ? {} : { authorization: `Bearer ${token}` }),
              ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
            },
            signal: stop.signal,
          });
          if (!res.ok || res.body === null) {
            const body = (await res.json().catch(() => null)) as unknown;
            setError(errorFromAnswer(res.status, body, `The gateway at ${url}`));
            return;
          }
          setError(null);
          setPhase('open');
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
        } catch (err) {
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the effect's clean-up aborts it while the read awaits
          if (stop.signal.aborted) return;
          if (err instanceof ApiError) {
            setError(err);
            return;
          }
        }
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- both change while the read awaits
        if (ended || stop.signal.aborted) return;
        setPhase('reconnecting');
        await wait(retryMs);
      }
    };
    void connect();
    return () => stop.abort();
  }, [dataPlaneId, runId, gateways]);

  const list = [...calls.values()].sort((a, b) => a.position - b.position);
  return (
    <section className="panel" aria-labelledby="stream-heading">
      <h3 id="stream-heading">Live model output</h3>
      <p className="muted" role="status" data-testid="stream-phase">
        {error === null ? PHASE_TEXT[phase] : 'Not streaming'}
      </p>
      {error === null ? null : <PanelError error={error} what="the live token stream" />}
      {list.length === 0 ? (
        error === null && phase !== 'ended' ? (
          <p className="muted">No model call has streamed text yet.</p>
        ) : null
      ) : (
        list.map((call) => (
          <div key={call.position} className="stream-call">
            <p>
              Call {call.position}: {call.name}
              {call.attempt > 1 ? ` (attempt ${call.attempt})` : ''} — {call.done ? 'done' : 'streaming…'}
            </p>
            <pre className="json" aria-label={`Live output of ${call.name}`} tabIndex={0}>
              {call.text}
            </pre>
          </div>
        ))
      )}
    </section>
  );
}
