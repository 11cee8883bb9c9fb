import { TerminalError, defineWorkflow } from '@cairn/sdk';

/** What a support agent submits to refund an order. */
export interface RefundRequest {
  readonly orderId: string;
  readonly customerEmail: string;
  readonly amount: number;
  readonly currency: string;
  readonly reason: string;
}

/** How the refund ended. */
export interface RefundResult {
  readonly status: 'refunded' | 'rejected';
  readonly refundId?: string;
  readonly approvedBy?: string;
  readonly note: string;
}

/** Refunds above this amount wait for a human approval. */
export const APPROVAL_THRESHOLD = 100;

interface Approval {
  readonly approved: boolean;
  readonly by: string;
  readonly comment?: string;
}

/**
 * An order refund: load the order, check it can be refunded, wait for a manager's approval above a
 * threshold (for days if needed: the run suspends and holds no worker), wait out a short settlement
 * window, issue the refund with an idempotency key the payment provider honours, and notify the
 * customer. Every step is journaled in the data plane, so a crash at any point resumes where it was
 * without refunding twice.
 */
export const orderRefund = defineWorkflow(
  { name: 'order-refund', version: '1' },
  async (ctx, input: RefundRequest): Promise<RefundResult> => {
    const order = await ctx.step('load-order', () => lookUpOrder(input.orderId, input.amount, input.currency));

    await ctx.step('check-eligibility', () => {
      if (order.status !== 'delivered')
        throw new TerminalError(`order ${order.orderId} is ${order.status}; only delivered orders can be refunded`);
      if (input.amount > order.total) throw new TerminalError(`refund of ${input.amount} exceeds the order total ${order.total}`);
      return { eligible: true };
    });

    let approvedBy = 'policy';
    if (input.amount > APPROVAL_THRESHOLD) {
      const approval = await ctx.waitForSignal<Approval>('approval', { timeout: '2d' });
      if (!approval.approved) {
        await ctx.step('notify-rejection', { key: input.customerEmail }, () =>
          sendEmail(input.customerEmail, `Your refund for ${order.orderId} was declined.`),
        );
        return { status: 'rejected', approvedBy: approval.by, note: approval.comment ?? 'declined by a manager' };
      }
      approvedBy = approval.by;
    }

    // Settlement window: give the payment provider time to clear the original charge.
    await ctx.sleep('2s');

    const refund = await ctx.step(
      'issue-refund',
      async ({ idempotencyKey }) => issueRefund(order.orderId, input.amount, input.currency, idempotencyKey),
      { retry: { initialInterval: '200ms', maximumAttempts: 5 }, timeout: '10s' },
    );

    await ctx.step('notify-customer', { key: input.customerEmail }, () =>
      sendEmail(input.customerEmail, `We refunded ${input.amount} ${input.currency} for order ${order.orderId} (${refund.refundId}).`),
    );

    return { status: 'refunded', refundId: refund.refundId, approvedBy, note: `refunded at ${ctx.now().toISOString()}` };
  },
);

// The outside world, simulated: in a real deployment these call the order service, the payment
// provider and the mailer from inside the customer's cluster.
function lookUpOrder(
  orderId: string,
  amount: number,
  currency: string,
): { orderId: string; status: string; total: number; currency: string } {
  return { orderId, status: 'delivered', total: Math.max(amount, 250), currency };
}

async function issueRefund(
  orderId: string,
  amount: number,
  currency: string,
  idempotencyKey: string,
): Promise<{ refundId: string; amount: number }> {
  await new Promise((resolve) => setTimeout(resolve, 50));
  const digest = idempotencyKey.replace(/[^a-z0-9]/gi, '').slice(-12);
  return { refundId: `re_${orderId}_${digest}`, amount: Number(amount.toFixed(currency === 'JPY' ? 0 : 2)) };
}

async function sendEmail(to: string, body: string): Promise<{ sent: boolean; chars: number }> {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { sent: to.includes('@'), chars: body.length };
}
