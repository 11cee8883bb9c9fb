// A client of a local stack's gateway, as an application would use it: start a `bench-steps` run,
// then long-poll its result.
import type { Stack } from '@cairn/dev';

export interface CairnClient {
  /** `POST /v1/runs`: resolves with the run's ID once the gateway has accepted the run. */
  readonly start: (steps: number) => Promise<string>;
  /** `GET /v1/runs/:id/result?wait=60`, repeated until the run has ended; throws unless it completed. */
  readonly result: (runId: string) => Promise<{ firstStepAt: number }>;
}

export function cairnClient(stack: Stack): CairnClient {
  const headers = { authorization: `Bearer ${stack.secrets.gatewayToken}`, 'content-type': 'application/json' };
  return {
    async start(steps) {
      const r = await fetch(`${stack.gatewayUrl}/v1/runs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ workflow: 'bench-steps', input: { steps } }),
      });
      if (r.status !== 201) throw new Error(`start → ${r.status} ${await r.text()}`);
      return ((await r.json()) as { runId: string }).runId;
    },
    async result(runId) {
      for (;;) {
        const r = await fetch(`${stack.gatewayUrl}/v1/runs/${runId}/result?wait=60`, { headers });
        if (r.status === 200) {
          const body = (await r.json()) as { status: string; output: { firstStepAt: number } };
          if (body.status !== 'completed') throw new Error(`run ${runId} ${body.status}`);
          return body.output;
        }
      }
    },
  };
}
