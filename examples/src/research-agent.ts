import { defineWorkflow } from '@cairn/sdk';
import { tool } from 'ai';
import { z } from 'zod';
import { chatModel } from './models.js';

/** A question for the research agent. */
export interface ResearchRequest {
  readonly question: string;
}

// A tiny knowledge base standing in for the search index and document store a real agent would
// call from inside the cluster.
const documents: Record<string, string> = {
  'durable-execution': 'Durable execution journals every step so a run resumes after a crash without repeating finished work.',
  'data-residency': 'Data residency keeps prompts, payloads and model outputs inside the customer cluster.',
  sagas: 'A saga pairs each step with a compensation that undoes it, run in reverse order on failure.',
};

const search = tool({
  description: 'Search the knowledge base; returns the IDs of matching documents.',
  inputSchema: z.object({ query: z.string() }),
  execute: ({ query }) => {
    const words = query.toLowerCase().split(/\W+/).filter(Boolean);
    return Object.entries(documents)
      .filter(([id, text]) => words.some((w) => id.includes(w) || text.toLowerCase().includes(w)))
      .map(([id]) => id);
  },
});

const read = tool({
  description: 'Read one document of the knowledge base by ID.',
  inputSchema: z.object({ id: z.string() }),
  execute: ({ id }) => documents[id] ?? `no document ${id}`,
});

/**
 * A research agent: the model plans, calls tools, reads their results and answers. Every model turn
 * is a durable model call and every tool call a durable step, so after a crash the loop resumes at
 * the first unfinished turn without calling the model again for the finished ones.
 */
export const researchAgent = defineWorkflow({ name: 'research-agent', version: '1' }, async (ctx, input: ResearchRequest) => {
  const result = await ctx.agent('research', {
    model: chatModel(),
    system: 'You answer questions from the knowledge base. Search first, read what you find, then answer in two sentences.',
    prompt: input.question,
    tools: { search, read },
    maxTurns: 8,
  });
  return { answer: result.text, turns: result.turns, tools: result.toolCalls.map((c) => c.toolName), tokens: result.usage };
});
