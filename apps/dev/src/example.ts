import type { Stack } from './stack.js';

interface RunView {
  run: { runId: string; status: string };
  output?: unknown;
  error?: { message: string };
}

// The caller names the shape of the JSON body it expects (a typed cast, as `res.json() as T`).
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
async function call<T>(stack: Stack, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${stack.secrets.gatewayToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as T;
  if (res.status >= 400) throw new Error(`${method} ${path} → ${res.status}: ${JSON.stringify(json)}`);
  return { status: res.status, json };
}

type Result = { status: number; json: { status: string; output?: unknown; error?: { message: string } } };

/** Starts a run, waits until it suspends (or ends), approves it, and long-polls its result. */
async function startApproveAndWait(
  stack: Stack,
  workflow: string,
  input: unknown,
  idempotencyKey: string,
  print: (line: string) => void,
  waitingLine: string,
  approvalPath: (runId: string) => string,
): Promise<{ runId: string; result: Result | undefined }> {
  const started = await call<{ runId: string }>(stack, 'POST', '/v1/runs', { workflow, input, idempotencyKey });
  const runId = started.json.runId;
  print(`  started run ${runId}`);
  for (let i = 0; i < 200; i++) {
    const view = await call<RunView>(stack, 'GET', `/v1/runs/${runId}`);
    if (['suspended', 'completed', 'failed'].includes(view.json.run.status)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  print(waitingLine);
  await call(stack, 'POST', approvalPath(runId), { approved: true, by: 'maria', comment: 'customer sent photos' });
  print(`  approved: POST ${approvalPath(runId)}`);
  let result: Result | undefined;
  for (let i = 0; i < 4; i++) {
    result = await call(stack, 'GET', `/v1/runs/${runId}/result?wait=30`);
    if (result.status === 200) break;
  }
  print(`  finished: ${result?.json.status} ${JSON.stringify(result?.json.output ?? result?.json.error)}`);
  return { runId, result };
}

/** Runs the example order refund through the gateway: start, approve, wait, show the timeline. */
export async function runExample(stack: Stack, print: (line: string) => void): Promise<void> {
  const input = { orderId: 'o-1001', customerEmail: 'jane@example.com', amount: 149.9, currency: 'EUR', reason: 'arrived damaged' };
  print(`Example: refund ${input.amount} ${input.currency} for order ${input.orderId} (above 100: needs an approval)`);
  const { runId } = await startApproveAndWait(
    stack,
    'order-refund',
    input,
    `example-${input.orderId}-${Date.now()}`,
    print,
    '  the run is suspended, waiting for the "approval" signal (it holds no worker slot)',
    (runId) => `/v1/runs/${runId}/signals/approval`,
  );
  const described = await fetch(`${stack.controlPlanes[0]!.httpUrl}/v1/projects/default/runs/${runId}`, {
    headers: { authorization: `Bearer ${stack.secrets.apiToken}` },
  });
  const timeline = (await described.json()) as {
    steps: Array<{ position: number; kind: string; name: string; status: string; attempt: number; durationMs: number | null }>;
  };
  print('  step timeline as the control plane sees it (names, statuses, times only):');
  for (const s of timeline.steps)
    print(
      `    #${s.position} ${s.kind.padEnd(6)} ${s.name.padEnd(18)} ${s.status.padEnd(9)} attempt ${s.attempt}  ${s.durationMs ?? '-'} ms`,
    );
}

/** Runs the support agent: a model classifies the request, a manager approves, a model replies. */
export async function runAgentExample(stack: Stack, print: (line: string) => void): Promise<void> {
  const input = {
    ticketId: 't-5001',
    customerEmail: 'jane@example.com',
    message: 'Hi, my order o-1001 arrived damaged. I paid 149.90 EUR and would like my money back. Jane',
  };
  print(`Example: support agent for ticket ${input.ticketId} (a model classifies it; a refund above 100 needs an approval)`);
  const { runId } = await startApproveAndWait(
    stack,
    'support-agent',
    input,
    `example-${input.ticketId}-${Date.now()}`,
    print,
    '  classified by the model (and self-checked by an eval gate); waiting for a manager to approve the refund',
    (runId) => `/v1/runs/${runId}/approvals/refund`,
  );
  const described = await fetch(`${stack.controlPlanes[0]!.httpUrl}/v1/projects/default/runs/${runId}`, {
    headers: { authorization: `Bearer ${stack.secrets.apiToken}` },
  });
  const timeline = (await described.json()) as {
    steps: Array<{
      position: number;
      kind: string;
      name: string;
      status: string;
      model?: string | null;
      inputTokens?: number | null;
      outputTokens?: number | null;
    }>;
  };
  print('  what the control plane knows about the model calls (names and numbers only):');
  for (const s of timeline.steps.filter((x) => x.kind === 'model')) {
    print(
      `    #${s.position} ${s.name.padEnd(12)} ${s.status.padEnd(9)} model ${s.model ?? '-'}  tokens in ${s.inputTokens ?? 0} / out ${s.outputTokens ?? 0}`,
    );
  }
}

/** Runs the research agent: every model turn and every tool call is a durable step. */
export async function runResearchExample(stack: Stack, print: (line: string) => void): Promise<void> {
  const question = 'What is durable execution, and why does it matter for agents?';
  print(`Example: research agent — "${question}"`);
  const started = await call<{ runId: string }>(stack, 'POST', '/v1/runs', { workflow: 'research-agent', input: { question } });
  const runId = started.json.runId;
  print(`  started run ${runId}`);
  let result: Result | undefined;
  for (let i = 0; i < 4; i++) {
    result = await call(stack, 'GET', `/v1/runs/${runId}/result?wait=30`);
    if (result.status === 200) break;
  }
  const output = result?.json.output as { answer?: string; turns?: number; tools?: string[] } | undefined;
  print(`  finished: ${result?.json.status} after ${output?.turns ?? '?'} model turns, tools ${JSON.stringify(output?.tools ?? [])}`);
  print(`  answer: ${output?.answer ?? JSON.stringify(result?.json.error)}`);
}
