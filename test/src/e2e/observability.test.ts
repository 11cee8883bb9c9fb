import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { CAIRN_SPAN_ATTRIBUTES } from '@cairn/worker';
import { startTestStack, type TestStack } from '../harness.js';
import { OtlpCollector, type CollectedSpan } from '../otlp-collector.js';
import { parseExposition, sum, type Sample } from '../prometheus.js';

/**
 * Observability as an operator sees it: the control plane exports its spans to its collector and
 * the workers and the gateway theirs to collectors in the data plane, joined by run ID and
 * traceparent, each process through the OpenTelemetry SDK configured by the standard `OTEL_*`
 * variables; the application's own spans nest under Cairn's; `/metrics` of the control plane, the
 * worker and the gateway count what happened; no collector and no scrape ever receives a payload.
 */
describe('observability', () => {
  let t: TestStack;
  let cpTraces: OtlpCollector;
  let dpTraces: OtlpCollector;
  let gwTraces: OtlpCollector;
  const metricsToken = `metrics-${randomUUID()}`;
  const secret = `SECRET${randomUUID().replace(/-/g, '')}`;
  let baseline: Sample[];
  const runs = { first: '', second: '', sleeper: '', doomed: '' };

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return parseExposition(await res.text());
  };
  const spansOf = (spans: readonly CollectedSpan[], name: string, runId: string): CollectedSpan[] =>
    spans.filter((s) => s.name === name && s.attributes['cairn.run_id'] === runId);

  before(async () => {
    cpTraces = await OtlpCollector.start();
    dpTraces = await OtlpCollector.start();
    gwTraces = await OtlpCollector.start();
    // The SDK's standard variables apply: batches go out every 200 ms, and the resource gets the
    // attributes given here.
    const sdkEnv = { OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=e2e' };
    t = await startTestStack({
      name: 'observability',
      workers: 1,
      suspendThresholdMs: 500,
      controlPlaneEnv: { CAIRN_CP_OTLP_TRACES_ENDPOINT: cpTraces.url, CAIRN_METRICS_TOKEN: metricsToken, ...sdkEnv },
      workerEnv: { CAIRN_DP_OTLP_TRACES_ENDPOINT: dpTraces.url, ...sdkEnv },
      gatewayEnv: { CAIRN_DP_OTLP_TRACES_ENDPOINT: gwTraces.url, ...sdkEnv },
    });
    baseline = await scrape();
    runs.first = await t.start('five-steps', { step3Ms: 10, note: secret }, { idempotencyKey: `idem-${secret}` });
    runs.second = await t.start('five-steps', { step3Ms: 10 });
    runs.sleeper = await t.start('sleeper', { sleepMs: 1500 });
    runs.doomed = await t.start('doomed', { secret });
    assert.equal((await t.result(runs.first)).status, 'completed');
    assert.equal((await t.result(runs.second)).status, 'completed');
    assert.equal((await t.result(runs.sleeper)).status, 'completed');
    const doomed = await t.result(runs.doomed);
    assert.equal(doomed.status, 'failed');
    assert.match(doomed.error?.message ?? '', new RegExp(secret), 'the error message stays readable in the data plane');
  });
  after(async () => {
    await t?.stop();
    await cpTraces?.close();
    await dpTraces?.close();
    await gwTraces?.close();
  });

  it('protects /metrics with CAIRN_METRICS_TOKEN', async () => {
    const url = `${t.stack.controlPlanes[0]!.httpUrl}/metrics`;
    const anonymous = await fetch(url);
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'CAIRN-1104');
    const wrong = await fetch(url, { headers: { authorization: `Bearer not-${metricsToken}` } });
    assert.equal(wrong.status, 401);
  });

  it('counts dispatches, finished steps, run ends and errors by code in /metrics', async () => {
    // A REST call without credentials and a gateway call for a workflow nobody announced: one error each.
    assert.equal((await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/whoami`)).status, 401);
    const unknown = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'no-such-workflow', input: {} }),
      headers: { 'content-type': 'application/json' },
    });
    assert.ok(unknown.status >= 400, `starting an unknown workflow is refused (got ${unknown.status})`);

    const delta = (samples: Sample[], name: string, labels: Record<string, string> = {}): number =>
      sum(samples, name, labels) - sum(baseline, name, labels);
    const expected = {
      dispatches: 5, // four runs, and the sleeper again after its timer
      stepsCompleted: 11, // 5 + 5 + after-sleep
      sleepsCompleted: 1,
      stepsFailed: 1,
      runsCompleted: 3,
      runsFailed: 1,
    };
    const observed = (m: Sample[]) => ({
      dispatches: delta(m, 'cairn_dispatch_latency_seconds_count'),
      stepsCompleted: delta(m, 'cairn_steps_finished_total', { kind: 'step', status: 'completed' }),
      sleepsCompleted: delta(m, 'cairn_steps_finished_total', { kind: 'sleep', status: 'completed' }),
      stepsFailed: delta(m, 'cairn_steps_finished_total', { kind: 'step', status: 'failed' }),
      runsCompleted: delta(m, 'cairn_runs_ended_total', { status: 'completed' }),
      runsFailed: delta(m, 'cairn_runs_ended_total', { status: 'failed' }),
    });
    // Counters move when the control plane has applied what the worker sent: wait for that, then compare exactly.
    let metrics = await scrape();
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; metrics = await scrape()) {
      const now = observed(metrics);
      const reached = (Object.keys(expected) as Array<keyof typeof expected>).every((k) => now[k] >= expected[k]);
      const errorsSeen =
        delta(metrics, 'cairn_api_errors_total', { api: 'rest', code: 'CAIRN-1104' }) >= 1 &&
        delta(metrics, 'cairn_api_errors_total', { api: 'grpc' }) >= 1;
      if (reached && errorsSeen) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(observed(metrics), expected);
    assert.equal(delta(metrics, 'cairn_run_failures_total', { error_code: 'STEP_TERMINAL' }), 1);
    assert.ok(delta(metrics, 'cairn_dispatch_latency_seconds_count', { wake_reason: 'timer' }) >= 1, 'the woken sleeper is counted');
    assert.ok(delta(metrics, 'cairn_api_errors_total', { api: 'rest', code: 'CAIRN-1104' }) >= 1);
    const grpcCodes = metrics.filter((s) => s.name === 'cairn_api_errors_total' && s.labels['api'] === 'grpc').map((s) => s.labels['code']);
    assert.ok(
      grpcCodes.length > 0 && grpcCodes.every((c) => /^CAIRN-\d{4}$/.test(c ?? '')),
      `gRPC errors by CAIRN code: ${grpcCodes.join(',')}`,
    );
    // Everything ended: nothing queued, no lease held; one worker connected.
    assert.equal(sum(metrics, 'cairn_queue_depth'), 0);
    assert.equal(sum(metrics, 'cairn_active_leases'), 0);
    assert.equal(sum(metrics, 'cairn_worker_sessions'), 1);
    assert.ok(sum(metrics, 'process_cpu_user_seconds_total') > 0, 'default process metrics are exported');
    // Bounded labels: no run ID, and no payload, anywhere in the exposition.
    const text = metrics.map((s) => JSON.stringify(s)).join('\n');
    for (const runId of Object.values(runs)) assert.equal(text.includes(runId), false, `run ID ${runId} is not a label`);
    assert.equal(text.includes(secret), false);
  });

  it('links control-plane dispatch spans and worker run spans by run ID and traceparent', async () => {
    const dispatchCount: Record<string, number> = { first: 1, second: 1, sleeper: 2, doomed: 1 };
    for (const [which, runId] of Object.entries(runs)) {
      const want = dispatchCount[which]!;
      const dispatches = await cpTraces.waitFor(`${want} dispatch spans of ${which}`, (spans) => {
        const found = spansOf(spans, 'cairn.dispatch', runId);
        return found.length >= want && found;
      });
      const executions = await dpTraces.waitFor(`${want} worker run spans of ${which}`, (spans) => {
        const found = spansOf(spans, 'cairn.run', runId);
        return found.length >= want && found;
      });
      assert.equal(dispatches.length, want);
      assert.equal(executions.length, want);
      for (const execution of executions) {
        const parent = dispatches.find((d) => d.traceId === execution.traceId && d.spanId === execution.parentSpanId);
        assert.ok(parent, `the worker's run span of ${which} is parented by a control-plane dispatch span`);
        assert.equal(parent.attributes['cairn.run.epoch'], execution.attributes['cairn.run.epoch']);
        assert.equal(execution.attributes['cairn.workflow.name'], parent.attributes['cairn.workflow.name']);
        assert.equal(execution.attributes['cairn.workflow.version'], '1');
        assert.equal(execution.service, 'cairn-worker');
        assert.equal(parent.service, 'cairn-control-plane');
      }
      // Every dispatch has an outcome span on the control plane, linked to it.
      const outcomes = await cpTraces.waitFor(`outcome spans of ${which}`, (spans) => {
        const found = spansOf(spans, 'cairn.run.outcome', runId);
        return found.length >= want && found;
      });
      for (const dispatch of dispatches) {
        assert.ok(
          outcomes.some((o) => o.links.some((l) => l.spanId === dispatch.spanId)),
          `an outcome span of ${which} links to its dispatch`,
        );
      }
    }
    const wakeReasons = (await cpTraces.waitFor('sleeper dispatches', (s) => spansOf(s, 'cairn.dispatch', runs.sleeper))).map(
      (d) => d.attributes['cairn.wake_reason'],
    );
    assert.deepEqual(wakeReasons.sort(), ['start', 'timer']);
  });

  it('traces each durable call under the worker run span, in the data plane only', async () => {
    const steps = await dpTraces.waitFor('five step spans of the first run', (spans) => {
      const found = spansOf(spans, 'cairn.step', runs.first);
      return found.length >= 5 && found;
    });
    const [execution] = spansOf(dpTraces.spans, 'cairn.run', runs.first);
    assert.ok(execution);
    assert.deepEqual(steps.map((s) => s.attributes['cairn.step.name']).sort(), ['step-1', 'step-2', 'step-3', 'step-4', 'step-5']);
    for (const step of steps) {
      assert.equal(step.parentSpanId, execution.spanId);
      assert.equal(step.traceId, execution.traceId);
      assert.equal(step.attributes['cairn.step.status'], 'completed');
    }
    assert.equal(execution.attributes['cairn.run.outcome'], 'completed');
    const sleep = await dpTraces.waitFor('the completed sleep', (spans) =>
      spansOf(spans, 'cairn.sleep', runs.sleeper).find((s) => s.attributes['cairn.step.status'] === 'completed'),
    );
    assert.equal(sleep.attributes['cairn.step.name'], 'sleep');
    const doomedRun = await dpTraces.waitFor('the failed run span', (s) =>
      spansOf(s, 'cairn.run', runs.doomed).find((r) => r.attributes['cairn.run.outcome'] === 'failed'),
    );
    assert.equal(doomedRun.status, 2);
    assert.equal(doomedRun.attributes['cairn.error_code'], 'step_terminal');
    const charge = await dpTraces.waitFor('the failed step', (spans) =>
      spansOf(spans, 'cairn.step', runs.doomed).find((s) => s.attributes['cairn.step.name'] === 'charge-card'),
    );
    assert.equal(charge.attributes['cairn.step.status'], 'failed');
    assert.equal(charge.status, 2);

    // The control plane's collector gets control-plane spans only: no worker span, no step name.
    assert.deepEqual([...new Set(cpTraces.spans.map((s) => s.service))], ['cairn-control-plane']);
    assert.deepEqual([...new Set(dpTraces.spans.map((s) => s.service))], ['cairn-worker']);
    assert.equal(
      cpTraces.spans.some((s) => 'cairn.step.name' in s.attributes),
      false,
    );
  });

  it('traces gateway calls, REST requests, timer and sweeper passes on the control plane', async () => {
    for (const runId of Object.values(runs)) {
      await cpTraces.waitFor(`StartRun span of ${runId}`, (spans) =>
        spans.find((s) => s.name === 'cairn.gateway.v1.GatewayService/StartRun' && s.attributes['cairn.run_id'] === runId),
      );
    }
    const waits = cpTraces.spans.filter((s) => s.name === 'cairn.gateway.v1.GatewayService/WaitRun');
    assert.ok(waits.length > 0 && waits.every((s) => s.kind === 2 && s.attributes['rpc.grpc.status_code'] === 0));
    assert.equal((await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/whoami`)).status, 401);
    const rest = await cpTraces.waitFor('a REST span', (spans) =>
      spans.find((s) => s.name === 'GET /v1/whoami' && s.attributes['http.response.status_code'] === 401),
    );
    assert.equal(rest.attributes['cairn.error.code'], 'CAIRN-1104');
    assert.match(String(rest.attributes['cairn.request_id']), /^[0-9a-f-]{36}$/);
    // The sleeper is woken by the timer armed for its wake-up time, or by the periodic sweep when a
    // sweep pass comes first (both queue due timers, and whichever is first takes the run): the pass
    // that woke it is traced either way, with the count it woke.
    const woke = await cpTraces.waitFor('the timer or sweep pass that woke the sleeper', (spans) =>
      spans.find(
        (s) =>
          (s.name === 'cairn.timers' && Number(s.attributes['cairn.timers.woken']) >= 1) ||
          (s.name === 'cairn.sweep' && Number(s.attributes['cairn.sweep.woken']) >= 1),
      ),
    );
    assert.equal(woke.service, 'cairn-control-plane');
    const sweep = await cpTraces.waitFor('a sweep pass', (spans) => spans.find((s) => s.name === 'cairn.sweep'));
    assert.equal(sweep.attributes['cairn.sweep.in_grace_period'] !== undefined, true);
  });

  it("nests the application's own spans under Cairn's step span, which takes none of the application's writes", async () => {
    const runId = await t.start('traced-step', { secret, amount: 42 });
    assert.deepEqual((await t.result(runId)).output, 'charged');
    const step = await dpTraces.waitFor('the step span of the traced run', (spans) =>
      spansOf(spans, 'cairn.step', runId).find((s) => s.attributes['cairn.step.status'] === 'completed'),
    );
    const own = await dpTraces.waitFor("the application's span", (spans) =>
      spans.find((s) => s.name === 'shop.charge' && s.traceId === step.traceId),
    );
    assert.equal(own.parentSpanId, step.spanId, "the application's span is a child of Cairn's step span");
    assert.equal(own.attributes['shop.amount'], 42);
    assert.equal(step.attributes['cairn.step.name'], 'charge-card');
    assert.equal(step.status, 0, "the application's setStatus did not reach Cairn's span");
    for (const span of dpTraces.spans.filter((s) => s.name.startsWith('cairn.'))) {
      const foreign = Object.keys(span.attributes).filter((k) => !CAIRN_SPAN_ATTRIBUTES.has(k));
      assert.deepEqual(foreign, [], `${span.name} carries only allow-listed attributes`);
    }
    assert.equal(step.resource['deployment.environment.name'], 'e2e', 'OTEL_RESOURCE_ATTRIBUTES reaches the resource');
    assert.equal(step.resource['service.name'], 'cairn-worker');
  });

  it("joins a caller's traceparent: the gateway request span, and the control plane's span of its call", async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    // A caller's tracestate is theirs to fill: the gateway keeps it in the data plane.
    const stateMarker = `st${randomBytes(8).toString('hex')}`;
    const res = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'five-steps', input: { step3Ms: 10, note: secret } }),
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: `shop=${stateMarker}` },
    });
    assert.equal(res.status, 201);
    const { runId } = (await res.json()) as { runId: string };
    const request = await gwTraces.waitFor('the gateway span of the start', (spans) =>
      spans.find((s) => s.name === 'POST /v1/runs' && s.traceId === traceId),
    );
    assert.equal(request.parentSpanId, callerSpan, "the gateway's span is a child of the caller's");
    assert.equal(request.kind, 2);
    assert.equal(request.attributes['http.response.status_code'], 201);
    assert.equal(request.service, 'cairn-gateway');
    assert.equal(request.resource['deployment.environment.name'], 'e2e');
    const start = await cpTraces.waitFor("the control plane's StartRun span", (spans) =>
      spans.find((s) => s.name === 'cairn.gateway.v1.GatewayService/StartRun' && s.attributes['cairn.run_id'] === runId),
    );
    // The gateway's span of the call starts a trace of its own, linked to the request span: the
    // caller chose its trace ID and tracestate, and neither crosses to the control plane.
    const call = await gwTraces.waitFor("the gateway's client span of the call", (spans) =>
      spans.find((s) => s.name === 'cairn.gateway.v1.GatewayService/StartRun' && s.links.some((l) => l.spanId === request.spanId)),
    );
    assert.equal(call.kind, 3);
    assert.equal(call.parentSpanId, '');
    assert.notEqual(call.traceId, traceId);
    assert.equal(start.traceId, call.traceId);
    assert.equal(start.parentSpanId, call.spanId, "the control plane's span is a child of the gateway's span of the call");
    assert.equal((await t.result(runId)).status, 'completed');
    assert.equal(gwTraces.received(stateMarker), true, 'the gateway span keeps the tracestate');
    assert.equal(cpTraces.received(stateMarker), false, 'the tracestate does not cross to the control plane');
    assert.equal(cpTraces.received(start.traceId), true, 'the collector receives trace IDs as hex, so the next check can see one');
    assert.equal(cpTraces.received(traceId), false, "the caller's trace ID does not cross to the control plane");
  });

  it('counts runs, steps, attempts, model tokens, leases, journal commits and the backlog on the worker and the gateway', async () => {
    const workerPort = t.stack.workers[0]!.lines.map((l) => {
      try {
        return JSON.parse(l) as { msg?: string; port?: number };
      } catch {
        return {};
      }
    }).find((l) => l.msg === 'worker health endpoint listening')?.port;
    assert.ok(workerPort, 'the worker logged its health port');
    const scrapeOf = async (url: string): Promise<Sample[]> => {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await res.text();
      assert.equal(text.includes(secret), false, `no payload in ${url}`);
      return parseExposition(text);
    };
    const workerMetrics = () => scrapeOf(`http://127.0.0.1:${workerPort}/metrics`);
    const gatewayMetrics = () => scrapeOf(`${t.stack.gatewayUrl}/metrics`);
    const workerBefore = await workerMetrics();
    const gatewayBefore = await gatewayMetrics();

    // A model call, a run that holds its lease across heartbeats, and one left waiting for a signal.
    const model = await t.start('model-call', { prompt: `count my tokens ${secret}` });
    const held = await t.start('five-steps', { step3Ms: 1500 });
    const waiting = await t.start('signal-waiter', { delayMs: 0 });
    assert.equal((await t.result(model)).status, 'completed');
    assert.equal((await t.result(held)).status, 'completed');
    await t.waitForRun(waiting, (r) => r.status === 'suspended');

    const w = await workerMetrics();
    const delta = (after: Sample[], before: Sample[], name: string, labels: Record<string, string> = {}): number =>
      sum(after, name, labels) - sum(before, name, labels);
    assert.equal(
      delta(w, workerBefore, 'cairn_worker_run_executions_total', { workflow: 'five-steps', version: '1', outcome: 'completed' }),
      1,
    );
    assert.equal(delta(w, workerBefore, 'cairn_worker_run_executions_total', { workflow: 'model-call', outcome: 'completed' }), 1);
    assert.equal(delta(w, workerBefore, 'cairn_worker_run_executions_total', { workflow: 'signal-waiter', outcome: 'suspended' }), 1);
    assert.equal(delta(w, workerBefore, 'cairn_worker_steps_total', { workflow: 'five-steps', kind: 'step', status: 'completed' }), 5);
    assert.equal(
      delta(w, workerBefore, 'cairn_worker_step_attempts_total', { workflow: 'five-steps', kind: 'step', status: 'completed' }),
      5,
    );
    assert.equal(delta(w, workerBefore, 'cairn_worker_steps_total', { workflow: 'model-call', kind: 'model', status: 'completed' }), 1);
    assert.equal(
      delta(w, workerBefore, 'cairn_worker_step_attempt_duration_seconds_count', { workflow: 'five-steps', status: 'completed' }),
      5,
    );
    assert.ok(delta(w, workerBefore, 'cairn_worker_model_tokens_total', { direction: 'input' }) > 0, 'input tokens are counted');
    assert.ok(delta(w, workerBefore, 'cairn_worker_model_tokens_total', { direction: 'output' }) > 0, 'output tokens are counted');
    assert.equal(delta(w, workerBefore, 'cairn_worker_model_call_duration_seconds_count', { status: 'completed' }), 1);
    assert.ok(delta(w, workerBefore, 'cairn_worker_lease_renewals_total') >= 1, 'the lease held through step 3 was renewed');
    assert.ok(
      delta(w, workerBefore, 'cairn_worker_journal_commit_duration_seconds_count', { result: 'ok' }) >= 7,
      'each step outcome is a commit',
    );
    assert.equal(sum(w, 'cairn_worker_leases_lost_total'), 0);
    assert.equal(sum(w, 'cairn_worker_stream_reconnects_total'), 0);
    assert.equal(sum(w, 'cairn_worker_stream_connected'), 1);
    assert.equal(sum(w, 'cairn_dp_decrypt_failures_total'), 0);
    assert.equal(sum(w, 'cairn_dp_listener_connected'), 1);

    const g = await gatewayMetrics();
    assert.equal(
      delta(g, gatewayBefore, 'cairn_gateway_runs_started_total', { workflow: 'five-steps', version: '1', result: 'created' }),
      1,
    );
    assert.equal(delta(g, gatewayBefore, 'cairn_gateway_runs_started_total', { workflow: 'signal-waiter', result: 'created' }), 1);
    assert.ok(
      delta(g, gatewayBefore, 'cairn_gateway_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/runs',
        status_code: '201',
      }) >= 3,
    );
    assert.ok(delta(g, gatewayBefore, 'cairn_gateway_control_plane_call_duration_seconds_count', { method: 'StartRun', code: 'OK' }) >= 3);
    assert.ok(sum(g, 'cairn_task_queue_runs', { state: 'suspended' }) >= 1, "the waiting run shows in its task queue's backlog");
    const ages = g.filter((s) => s.name === 'cairn_task_queue_oldest_queued_age_seconds');
    assert.ok(ages.length > 0 && ages.every((s) => s.value === 0), 'nothing is queued: no backlog age, and a number (not NaN)');
    assert.equal(sum(g, 'cairn_gateway_control_plane_connected'), 1);
    assert.equal(sum(g, 'cairn_dp_decrypt_failures_total'), 0);
    const runIds = [model, held, waiting];
    for (const samples of [w, g]) {
      const text = samples.map((s) => JSON.stringify(s)).join('\n');
      for (const runId of runIds) assert.equal(text.includes(runId), false, 'no run ID in a label');
    }
    assert.equal((await t.signal(waiting, 'go', { ok: true })).status, 202);
    assert.equal((await t.result(waiting)).status, 'completed');
  });

  it('sends no payload, key or error message to any collector', async () => {
    // Stopping the processes exports every span they still buffer.
    await t.stack.stop();
    assert.ok(cpTraces.bodies.length > 0 && dpTraces.bodies.length > 0 && gwTraces.bodies.length > 0);
    assert.equal(cpTraces.received(secret), false, 'the control-plane collector never sees the secret');
    assert.equal(dpTraces.received(secret), false, 'worker spans carry no payloads either');
    assert.equal(gwTraces.received(secret), false, 'nor gateway spans');
    assert.deepEqual(cpTraces.problems, []);
    assert.deepEqual(dpTraces.problems, []);
    assert.deepEqual(gwTraces.problems, []);
  });
});
