import { TerminalError, defineWorkflow } from '@cairn/sdk';
import { z } from 'zod';
import { chatModel } from './models.js';

/** A customer's support request as it arrives from the help desk. */
export interface SupportRequest {
  readonly ticketId: string;
  readonly customerEmail: string;
  readonly message: string;
}

const Classification = z.object({
  category: z.enum(['refund', 'question', 'complaint', 'other']),
  orderId: z.string(),
  amount: z.number().nonnegative(),
  currency: z.string().length(3),
  confidence: z.number().min(0).max(1),
});

/** Refunds above this amount wait for a human approval. */
export const SUPPORT_APPROVAL_THRESHOLD = 100;

/**
 * A support agent: a model classifies the request into a schema-checked structure, a manager
 * approves refunds above a threshold (the run suspends, for days if needed), the refund is issued
 * with an idempotency key, and a model drafts the reply. The prompt, the customer's message and the
 * model's answers stay in the data plane; the control plane sees step names, statuses, token counts
 * and the provider and model names.
 */
export const supportAgent = defineWorkflow({ name: 'support-agent', version: '1' }, async (ctx, input: SupportRequest) => {
  const { object: ticket, usage } = await ctx.model('classify', {
    model: chatModel(),
    system: 'You triage customer support requests for an online shop. Answer with the requested JSON only.',
    prompt: `Classify this support request and extract the order and amount.\n\n${input.message}`,
    schema: Classification,
    key: input.ticketId,
    // Self-check before acting on it: the order mentioned must be the one the model extracted.
    eval: {
      checks: [
        (t: z.infer<typeof Classification>) => input.message.includes(t.orderId) || `order ${t.orderId} is not in the customer's message`,
      ],
      maxRetries: 2,
      onFail: 'approval',
    },
  });

  if (ticket.category !== 'refund') return { status: 'routed', category: ticket.category, tokens: usage.inputTokens + usage.outputTokens };
  if (ticket.confidence < 0.5)
    throw new TerminalError(`classification too uncertain (${ticket.confidence}); route ticket ${input.ticketId} to a human`);

  let approvedBy = 'policy';
  if (ticket.amount > SUPPORT_APPROVAL_THRESHOLD) {
    const approval = await ctx.approval('refund', { timeout: '2d' });
    if (!approval.approved) return { status: 'rejected', by: approval.by ?? 'unknown' };
    approvedBy = approval.by ?? 'unknown';
  }

  // If anything after the refund fails (or the run is cancelled), the refund is reversed.
  const refund = await ctx.step(
    'issue-refund',
    async ({ idempotencyKey }) => {
      await new Promise((r) => setTimeout(r, 20));
      return { refundId: `re_${ticket.orderId}_${idempotencyKey.slice(-8)}`, amount: ticket.amount, currency: ticket.currency };
    },
    {
      retry: { maximumAttempts: 5 },
      compensate: (issued) => ({ reversed: issued.refundId }),
    },
  );

  const reply = await ctx.model('draft-reply', {
    model: chatModel(),
    prompt: `Write a short reply to the customer confirming a refund of ${refund.amount} ${refund.currency} for order ${ticket.orderId}.\n\nTheir message: ${input.message}`,
    key: input.ticketId,
  });
  await ctx.step('send-reply', { key: input.customerEmail }, () => ({ sent: true, chars: reply.text.length }));

  return { status: 'refunded', refundId: refund.refundId, approvedBy, reply: reply.text };
});
