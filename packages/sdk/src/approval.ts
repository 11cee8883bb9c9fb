import { CairnError, ErrorCodes } from '@cairn/common/core';
import type { Duration } from '@cairn/common/core';

/**
 * Options of `ctx.approval`.
 *
 * @example
 * ```ts
 * const answer = await ctx.approval('refund', { key: order.id, timeout: '3d', onTimeout: 'reject' });
 * ```
 */
export interface ApprovalOptions {
  /**
   * How long to wait for an answer (ms or `'3d'`). Without it the run waits until someone
   * answers, suspended (no worker slot, no polling), for days if need be.
   */
  readonly timeout?: Duration;
  /**
   * The dynamic part of the approval's identity (an order ID, an email), when one workflow asks
   * several approvals of the same name. It never leaves the data plane in clear: the signal name
   * that crosses to the control plane ends with a 32-hex-digit HMAC of it, and whoever answers
   * gives the same `key` to the gateway, which derives the same name.
   */
  readonly key?: string | number;
  /**
   * What happens when `timeout` passes without an answer: `'throw'` (the default) throws
   * {@link ApprovalTimeoutError}; `'reject'` returns `{ approved: false, timedOut: true }`, so the
   * workflow takes its "rejected" path. Throwing is the default because a missing answer is not a
   * "no": code that only checks `approved` would otherwise treat silence as a decision.
   */
  readonly onTimeout?: 'throw' | 'reject';
}

/**
 * A human's answer to `ctx.approval`, as sent to the gateway's
 * `POST /v1/runs/:id/approvals/:name` (or its `/approve` and `/reject` shortcuts). It is journaled
 * in the data plane, so a replay returns the same answer. `comment` and `data` never leave the data
 * plane.
 *
 * @example
 * ```ts
 * const answer: ApprovalResult<{ amount: number }> = await ctx.approval('refund');
 * if (answer.approved) await ctx.step('refund', () => payments.refund(answer.data?.amount ?? total));
 * ```
 */
export interface ApprovalResult<T = unknown> {
  /** True only when the answer said `"approved": true`; any other answer is a rejection. */
  readonly approved: boolean;
  /** Who answered, as the caller of the gateway said. */
  readonly by?: string;
  /** The answer's free-text comment (data plane only). */
  readonly comment?: string;
  /** Any JSON the answer carried, for example an edited amount. */
  readonly data?: T;
  /** True when no answer came before the timeout and `onTimeout: 'reject'` was given. */
  readonly timedOut?: boolean;
}

/**
 * What `ctx.approval` throws when its `timeout` passes without an answer (unless
 * `onTimeout: 'reject'`). Left uncaught, the run fails with the `SIGNAL_TIMEOUT` code (an
 * approval is a signal wait underneath), CAIRN-2005.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.approval('publish', { timeout: '2d' });
 * } catch (err) {
 *   if (!(err instanceof ApprovalTimeoutError)) throw err;
 *   await ctx.step('escalate', () => pager.page('editors'));
 * }
 * ```
 */
export class ApprovalTimeoutError extends CairnError {
  /** The approval name, as written in code. */
  readonly approvalName: string;
  /** The timeout in milliseconds, when known. */
  readonly timeoutMs: number | undefined;

  constructor(init: { approvalName: string; timeoutMs?: number | undefined }) {
    const after = init.timeoutMs === undefined ? '' : ` within ${init.timeoutMs} ms`;
    super(ErrorCodes.SIGNAL_TIMEOUT, `No answer to approval "${init.approvalName}" arrived${after}.`, { details: { ...init } });
    this.name = 'ApprovalTimeoutError';
    this.approvalName = init.approvalName;
    this.timeoutMs = init.timeoutMs;
  }
}

/**
 * Reads a signal body as an approval answer. Lenient on purpose: the body may have been sent with
 * the raw signal endpoint. Only `approved: true` approves (fail closed); `by` and `comment` are
 * kept when they are strings, `data` whatever it is.
 *
 * @example
 * ```ts
 * toApprovalResult({ approved: true, by: 'maria' }); // { approved: true, by: 'maria' }
 * toApprovalResult('yes'); // { approved: false }
 * ```
 */
export function toApprovalResult<T = unknown>(body: unknown): ApprovalResult<T> {
  const b = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  return {
    approved: b['approved'] === true,
    ...(typeof b['by'] === 'string' ? { by: b['by'] } : {}),
    ...(typeof b['comment'] === 'string' ? { comment: b['comment'] } : {}),
    ...(b['data'] === undefined ? {} : { data: b['data'] as T }),
  };
}
