// The approvals inbox in a real browser on the local stack: every run waiting on a human, across
// workflows, with its context read from the gateway (the input, what the run recorded before it
// waited); approve and reject in place with a comment, and the runs go on accordingly. Comments
// and inputs go to the gateway only, never to the control plane.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

/** The inbox card of a run. */
const card = (page: Page, runId: string): Locator =>
  page.getByRole('article').filter({ has: page.getByRole('link', { name: runId, exact: true }) });

/** Makes this browser use another gateway token for every data plane (as if one had pasted it). */
async function useGatewayToken(page: Page, token: string): Promise<void> {
  await page.evaluate((t) => {
    const tokens = JSON.parse(sessionStorage.getItem('cairn.gateway-tokens') ?? '{}') as Record<string, { url: string; token: string }>;
    for (const id of Object.keys(tokens)) tokens[id]!.token = t;
    sessionStorage.setItem('cairn.gateway-tokens', JSON.stringify(tokens));
  }, token);
}

/** A gateway token that may read but not signal runs. */
const READ_ONLY = `cgt_read_${randomUUID()}`;

describe('console: approvals inbox', () => {
  let t: TestStack;
  let browser: Browser;
  before(async () => {
    t = await startTestStack({ name: 'console-approvals', workers: 1, gatewayTokens: [`${READ_ONLY}:read`] });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  const waitingForApproval = (runId: string) =>
    t.waitForRun(runId, (r) => r.status === 'suspended' && (r.waitingSignal ?? '').startsWith('approval.'));

  it('lists every run waiting on a human with its context, and approves and rejects in place', async () => {
    const toApprove = await t.start('verdict', { ticket: 'TICKET-APPROVE-81' });
    const toReject = await t.start('verdict', { ticket: 'TICKET-REJECT-82' });
    // A keyed approval (the key is an e-mail): it records a step first, then waits.
    const keyed = await t.start('keyed-email', { email: 'reviewer-93@example.com' });
    // Waiting on a plain signal: not an approval, not in the inbox.
    const notApproval = await t.start('typed-refund', { orderId: 'ORD-SIGNAL', amount: 1 });
    for (const runId of [toApprove, toReject, keyed]) await waitingForApproval(runId);
    await t.waitForRun(notApproval, (r) => r.status === 'suspended');

    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByRole('link', { name: 'Approvals', exact: true }).click();
      await page.getByRole('heading', { name: 'Approvals', level: 1 }).waitFor();

      const approveCard = card(page, toApprove);
      await approveCard.getByRole('heading', { name: 'review in verdict@1' }).waitFor();
      const input = approveCard.getByLabel(`Input of run ${toApprove}`);
      await input.waitFor();
      assert.deepEqual(JSON.parse((await input.textContent()) ?? ''), { ticket: 'TICKET-APPROVE-81' });
      await approveCard.getByText('Nothing: the run asked first.').waitFor();

      const keyedCard = card(page, keyed);
      await keyedCard.getByRole('heading', { name: 'confirm in keyed-email@1' }).waitFor();
      const recorded = keyedCard.getByLabel('Value recorded by step lookup');
      await recorded.waitFor();
      assert.deepEqual(JSON.parse((await recorded.textContent()) ?? ''), { found: true });
      await card(page, toReject).waitFor();
      assert.equal(await card(page, notApproval).count(), 0, 'a run waiting on a plain signal is not an approval');

      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'approvals');

      // Approve with a comment.
      await approveCard.getByLabel('Your name (optional)').fill('Dana');
      await approveCard.getByLabel('Comment').fill('COMMENT-OK-5521 looks right');
      await approveCard.getByRole('button', { name: 'Approve' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: `Approved: run ${toApprove} goes on.` })
        .waitFor();
      const approved = await t.result(toApprove);
      assert.deepEqual([approved.status, approved.output], ['completed', true]);

      // Reject.
      const rejectCard = card(page, toReject);
      await rejectCard.getByLabel('Comment').fill('COMMENT-NO-7734 not this one');
      await rejectCard.getByRole('button', { name: 'Reject' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: `Rejected: run ${toReject} goes on.` })
        .waitFor();
      const rejected = await t.result(toReject);
      assert.deepEqual([rejected.status, rejected.output], ['completed', false]);

      // The keyed approval is answered under its digest: the key never had to be typed here.
      await keyedCard.getByRole('button', { name: 'Approve' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: `Approved: run ${keyed} goes on.` })
        .waitFor();
      const keyedResult = await t.result(keyed);
      assert.deepEqual([keyedResult.status, keyedResult.output], ['completed', { approved: true }]);

      // Answered runs leave the inbox; the one waiting on a plain signal never was in it.
      await card(page, toApprove).waitFor({ state: 'detached' });
      await card(page, toReject).waitFor({ state: 'detached' });
      await page.reload();
      await page.getByRole('heading', { name: 'Approvals', level: 1 }).waitFor();
      await page.getByText('No run is waiting for an approval.').waitFor();

      // Inputs, comments and keys went to the gateway only.
      const secrets = ['TICKET-APPROVE-81', 'COMMENT-OK-5521', 'COMMENT-NO-7734', 'reviewer-93@example.com', 'Dana'];
      for (const request of session.controlPlaneRequests()) {
        const seen = `${request.url} ${request.body ?? ''}`;
        for (const secret of secrets) assert.ok(!seen.includes(secret), `${secret} reached the control plane: ${request.url}`);
      }
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
    assert.equal((await t.signal(notApproval, 'refund-approval', { approved: true, by: 'ops' })).status, 202);
    assert.equal((await t.result(notApproval)).status, 'completed');
  });
  it('says which scope is missing when the gateway token may not answer, and the run keeps waiting', async () => {
    const runId = await t.start('verdict', { ticket: 'TICKET-SCOPE' });
    await waitingForApproval(runId);
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await useGatewayToken(page, READ_ONLY);
      await page.goto(`${t.stack.controlPlanes[0]!.httpUrl}/p/default/approvals`);
      const waiting = card(page, runId);
      // Reading the context takes the read scope only.
      await waiting.getByLabel(`Input of run ${runId}`).waitFor();
      await waiting.getByRole('button', { name: 'Approve' }).click();
      const alert = waiting.getByRole('alert').filter({ hasText: 'The answer was not sent' });
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /needs the scope signal/);
      assert.deepEqual(await accessibilityViolations(page), []);
      assert.equal((await t.describe(runId)).run.status, 'suspended');
    } finally {
      await session.close();
    }
  });
});
