import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jsonSchema, tool, type LanguageModel } from 'ai';
import { testPostgresKinds } from '@cairn/local-postgres';
import type { PayloadStore } from '@cairn/payload-store';
import { AgentMaxTurnsError, defineWorkflow, type AgentResult } from '@cairn/sdk';
import type { RunExecution } from './engine.js';
import type { FakeControlPlane } from './testing/engine-harness.js';
import { expectKind, pause } from './testing/engine-harness.js';
import { startEngineFixture, type EngineFixture } from './testing/fixture.js';
import type { OpenAIServer } from './testing/openai-server.js';
import { type Reply } from './testing/openai-server.js';

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const toolTurn = (n: number): Reply => ({ kind: 'tools', calls: [{ id: `call_${n}`, name: 'double', input: { n } }] });

for (const kind of testPostgresKinds()) {
  describe(`ctx.agent on ${kind} Postgres`, () => {
    let fixture: EngineFixture;
    let store: PayloadStore;
    let cp: FakeControlPlane;
    let llm: OpenAIServer;
    let model: (id: string) => LanguageModel;

    before(async () => {
      fixture = await startEngineFixture(kind, 'wa');
      ({ store, cp, llm, model } = fixture);
    });

    after(() => fixture.close());

    /** A workflow running an agent with one tool, `double`, whose executions are recorded. */
    const agentWorkflow = (name: string, executed: number[], onExecute?: (n: number) => void, extra: object = {}) => {
      const double = tool({
        description: 'Doubles a number',
        inputSchema: jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } }, required: ['n'] }),
        execute: ({ n }) => {
          executed.push(n);
          onExecute?.(n);
          return { doubled: n * 2 };
        },
      });
      return defineWorkflow({ name, version: '1' }, async (ctx, prompt: string) => {
        const result = await ctx.agent('helper', {
          model: model('acme-large'),
          system: 'Use the tool.',
          prompt,
          tools: { double },
          maxTurns: 40,
          stream: false,
          ...extra,
        });
        return result;
      });
    };

    /** Waits until the run's journal holds `count` entries (a step result offered after a lost lease). */
    const journalHolds = async (runId: string, count: number) => {
      for (let i = 0; i < 200 && (await store.loadJournal(runId)).length < count; i++) await pause(10);
      assert.equal((await store.loadJournal(runId)).length, count);
    };

    it('runs turns as model calls and tools as steps, and resumes after a crash without calling the provider for finished turns', async () => {
      const executed: number[] = [];
      let execution: RunExecution | undefined;
      const wf = agentWorkflow('agent-resume', executed, (n) => {
        if (n === 3 && execution?.epoch === 1) execution.lose();
      });
      llm.script([toolTurn(1), toolTurn(2), toolTurn(3), toolTurn(4), toolTurn(5), { kind: 'text', text: 'all doubled' }]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, 'double 1 to 5');
      const engine = cp.engine([wf]);
      execution = cp.dispatch(engine, runId, wf);
      expectKind(await execution.done, 'lost');
      // Killed between turns 3 and 4: turn 3's tool result is journaled, turn 4 not started.
      await journalHolds(runId, 6);
      assert.equal(llm.since(from).length, 3);

      execution = cp.dispatch(engine, runId, wf);
      expectKind(await execution.done, 'completed');
      assert.equal(execution.epoch, 2);
      const requests = llm.since(from);
      assert.equal(requests.length, 6, 'turns 1-3 are not called again');
      assert.deepEqual(execution.replayed, { model: 3, step: 3 });
      assert.deepEqual(executed, [1, 2, 3, 4, 5], 'no tool runs twice');
      // Turn 4 got the conversation rebuilt from the journal: system, user, 3 × (assistant, tool).
      const turn4 = requests[3]!.body as { messages: Array<{ role: string; content?: unknown }> };
      assert.deepEqual(
        turn4.messages.map((m) => m.role),
        ['system', 'user', 'assistant', 'tool', 'assistant', 'tool', 'assistant', 'tool'],
      );
      assert.match(JSON.stringify(turn4.messages[7]), /doubled.*6/);

      const output = (await store.getRun(runId))?.output as AgentResult;
      assert.equal(output.text, 'all doubled');
      assert.equal(output.turns, 6);
      assert.equal(output.finishReason, 'stop');
      assert.deepEqual(
        output.toolCalls.map((c) => [c.turn, c.toolCallId, c.toolName, c.output]),
        [1, 2, 3, 4, 5].map((n) => [n, `call_${n}`, 'double', { doubled: n * 2 }]),
      );
      assert.deepEqual(output.usage, { inputTokens: 5 * 20 + 11, outputTokens: 5 * 9 + 7 });
      assert.equal(output.messages.length, 11);
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.slice(0, 4).map((e) => [e.kind, e.name]),
        [
          ['model', 'helper.turn'],
          ['step', 'helper.tool.double'],
          ['model', 'helper.turn'],
          ['step', 'helper.tool.double'],
        ],
      );
    });

    it('checkpoints a 25-turn loop, and a replay walks only the turns since the latest checkpoint', async () => {
      const executed: number[] = [];
      let execution: RunExecution | undefined;
      const wf = agentWorkflow('agent-long', executed, (n) => {
        if (n === 24 && execution?.epoch === 1) execution.lose();
      });
      const turns = Array.from({ length: 24 }, (_, i) => toolTurn(i + 1));
      llm.script([...turns, { kind: 'text', text: 'finished' }]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, 'count to 24');
      const engine = cp.engine([wf]);
      execution = cp.dispatch(engine, runId, wf);
      expectKind(await execution.done, 'lost');
      // 24 turns and 24 tools, plus checkpoints after turns 10 and 20.
      await journalHolds(runId, 24 * 2 + 2);
      assert.equal(execution.replayed.model, 0);

      execution = cp.dispatch(engine, runId, wf);
      expectKind(await execution.done, 'completed');
      // Replay from the checkpoint of turn 20: turns 21-24 and their tools, not all 24.
      assert.deepEqual(execution.replayed, { model: 4, step: 4 });
      assert.equal(llm.since(from).length, 25);
      assert.deepEqual(
        executed,
        Array.from({ length: 24 }, (_, i) => i + 1),
      );
      const output = (await store.getRun(runId))?.output as AgentResult;
      assert.equal(output.turns, 25);
      assert.equal(output.text, 'finished');
      assert.equal(output.toolCalls.length, 24);
      assert.deepEqual(output.toolCalls[23]?.output, { doubled: 48 });
      assert.equal(output.messages.length, 49);
      // The last turn saw the whole conversation.
      const last = llm.since(from)[24]!.body as { messages: unknown[] };
      assert.equal(last.messages.length, 2 + 48);
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.filter((e) => e.name === 'helper.checkpoint').map((e) => e.status),
        ['completed', 'completed'],
      );
    });

    it('stops at maxTurns with AgentMaxTurnsError, or returns with finishReason max-turns', async () => {
      const executed: number[] = [];
      const throwing = agentWorkflow('agent-max', executed, undefined, { maxTurns: 2 });
      const caught = defineWorkflow({ name: 'agent-max-caught', version: '1' }, async (ctx, prompt: string) => {
        try {
          return await throwing.run(ctx, prompt);
        } catch (err) {
          assert.ok(err instanceof AgentMaxTurnsError);
          return { maxTurns: err.maxTurns, turns: err.result.turns, calls: err.result.toolCalls.length };
        }
      });
      llm.script([toolTurn(1), toolTurn(2)]);
      let runId = await cp.start(caught, 'go');
      expectKind((await cp.drive(cp.engine([caught]), runId, caught)).outcome, 'completed');
      assert.deepEqual((await store.getRun(runId))?.output, { maxTurns: 2, turns: 2, calls: 2 });

      const returning = agentWorkflow('agent-max-return', executed, undefined, { maxTurns: 1, onMaxTurns: 'return' });
      llm.script([toolTurn(7)]);
      runId = await cp.start(returning, 'go');
      expectKind((await cp.drive(cp.engine([returning]), runId, returning)).outcome, 'completed');
      const output = (await store.getRun(runId))?.output as AgentResult;
      assert.equal(output.finishReason, 'max-turns');
      assert.equal(output.turns, 1);
      assert.deepEqual(executed, [1, 2, 7]);
    });

    it('sends a failing tool back to the model as an error, and rejects tools without execute', async () => {
      const wf = defineWorkflow({ name: 'agent-errors', version: '1' }, async (ctx) => {
        const broken = tool({
          description: 'Always fails',
          inputSchema: jsonSchema<object>({ type: 'object', properties: {} }),
          execute: (): string => {
            throw new Error('the warehouse is closed');
          },
        });
        return ctx.agent('helper', {
          model: model('acme-large'),
          prompt: 'try',
          tools: { broken },
          toolRetry: { maximumAttempts: 1 },
          stream: false,
        });
      });
      llm.script([
        {
          kind: 'tools',
          calls: [{ id: 'c1', name: 'broken', input: {} }],
        },
        { kind: 'text', text: 'sorry' },
      ]);
      const from = llm.requests.length;
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      const output = (await store.getRun(runId))?.output as AgentResult;
      assert.equal(output.text, 'sorry', JSON.stringify(output));
      assert.match(output.toolCalls[0]?.error ?? '', /warehouse is closed/, JSON.stringify(output));
      const second = llm.since(from)[1]!.body as { messages: Array<{ role: string; content?: unknown }> };
      assert.match(JSON.stringify(second.messages.filter((m) => m.role === 'tool')), /warehouse is closed/);

      const bad = defineWorkflow({ name: 'agent-bad', version: '1' }, async (ctx) =>
        ctx.agent('helper', {
          model: model('x'),
          prompt: 'p',
          tools: { t: tool({ inputSchema: jsonSchema<{ a?: string }>({ type: 'object' }) }) },
        }),
      );
      const badRun = await cp.start(bad, null);
      expectKind((await cp.drive(cp.engine([bad]), badRun, bad)).outcome, 'failed');
    });
  });
}
