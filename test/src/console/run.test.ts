// The run page in a real browser on the local stack: the waterfall of durable calls (retries and
// their backoff, keyboard selection), approving a waiting run, a signal body refused in the
// browser by the signal's schema and then sent, tokens streaming from a running model call,
// forking from a step onto a newer version, cancel and terminate, a failed run's error with its
// stack, and what a user sees with a token that may only read and with a payload the gateway
// cannot decrypt.
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot, type ConsoleSession } from './browser.js';

const readOnlyToken = `cgt_${randomBytes(24).toString('base64url')}`;

async function openRun(session: ConsoleSession, t: TestStack, runId: string): Promise<Page> {
  const { page } = session;
  await page.goto(`${t.stack.controlPlanes[0]!.httpUrl}/p/default/runs/${runId}`);
  await page.getByRole('heading', { name: `Run ${runId}` }).waitFor();
  return page;
}

/** The run's status as the page's title row shows it. */
const statusBadge = (page: Page) => page.locator('.title-row .badge');

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(url).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer in 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.locator('.title-row .badge', { hasText: status }).waitFor({ timeout: 30_000 });
}

describe('console: run detail', () => {
  let t: TestStack;
  let browser: Browser;
  before(async () => {
    t = await startTestStack({ name: 'console-run', workers: 1, gatewayTokens: [`${readOnlyToken}:read`] });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('draws retries and their backoff on the timeline, selectable with the keyboard', async () => {
    const runId = await t.start('flaky', { failures: 2, backoffMs: 400 });
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      const bar = page.getByRole('button', { name: /^0 step flaky-call\s*:/ });
      await bar.waitFor();
      const label = (await bar.textContent()) ?? '';
      assert.match(label, /completed/);
      assert.match(label, /3 attempts/);
      assert.match(label, /of backoff/);
      // The hatched backoff gaps are drawn between the attempts' bars.
      assert.equal(await bar.locator('.bar-backoff').count(), 2);
      assert.equal(await bar.locator('.bar-retrying, .bar-failed').count(), 2);
      // The table alternative says the same.
      const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'flaky-call' }) });
      assert.equal(await row.getByRole('cell').nth(4).textContent(), '3');
      // Keyboard: focus the call, press Enter, and its result opens.
      await bar.focus();
      await page.keyboard.press('Enter');
      assert.equal(await bar.getAttribute('aria-pressed'), 'true');
      const result = page.getByLabel('Result of call 0');
      await result.waitFor();
      assert.deepEqual(JSON.parse((await result.textContent()) ?? ''), { attempts: 3 });
      assert.match(page.url(), /[?&]call=0/);
      await page.getByRole('list', { name: 'Attempts' }).waitFor();
      await screenshot(page, 'run-timeline');
      assert.deepEqual(await accessibilityViolations(page), []);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('approves a waiting run with a comment from the run page', async () => {
    const runId = await t.start('verdict', {});
    await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'approval.review');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      await page.getByRole('heading', { name: 'Approval: review' }).waitFor();
      await page.getByTestId('run-suspension').filter({ hasText: 'waiting for approval review' }).waitFor();
      await page.getByRole('button', { name: /^0 signal approval\.review\s*:.*waiting for approval review/ }).waitFor();
      await screenshot(page, 'run-detail');
      assert.deepEqual(await accessibilityViolations(page), []);
      await page.getByLabel('Answered by').fill('maria');
      await page.getByLabel('Comment').fill('looks right to me');
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('status').filter({ hasText: 'Approved.' }).waitFor();
      await waitForStatus(page, 'completed');
      const output = page.getByLabel('Output value');
      await output.waitFor();
      assert.equal(JSON.parse((await output.textContent()) ?? ''), true);
      // The approval's answer is a payload: it went to the gateway, never to the control plane.
      assert.ok(session.controlPlaneRequests().every((r) => !(r.body ?? '').includes('looks right to me')));
      assert.ok(
        session.requests.some(
          (r) => r.method === 'POST' && r.url.startsWith(t.stack.gatewayUrl) && r.url.endsWith('/approvals/review/approve'),
        ),
      );
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('answers a keyed approval: a wrong key is said, the right one lands', async () => {
    const runId = await t.start('keyed-email', { email: 'ana@example.com' });
    const waiting = await t.waitForRun(runId, (r) => r.status === 'suspended' && (r.waitingSignal ?? '').startsWith('approval.confirm.'));
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      await page.getByRole('heading', { name: 'Approval: confirm' }).waitFor();
      const approve = page.getByRole('button', { name: 'Approve' });
      assert.equal(await approve.isDisabled(), true, 'a keyed approval needs its key');
      await page.getByLabel('Approval key').fill('bob@example.com');
      await approve.click();
      const wrong = page.getByRole('status').filter({ hasText: 'check the approval key' });
      await wrong.waitFor();
      assert.match((await wrong.textContent()) ?? '', new RegExp(`waits for ${waiting.waitingSignal!.replace(/\./g, '\\.')}`));
      assert.equal((await t.describe(runId)).run.status, 'suspended');
      assert.deepEqual(await accessibilityViolations(page), []);
      await page.getByLabel('Approval key').fill('ana@example.com');
      await approve.click();
      await page
        .getByRole('status')
        .filter({ hasText: /^Approved\.$/ })
        .waitFor();
      await waitForStatus(page, 'completed');
      assert.deepEqual(JSON.parse((await page.getByLabel('Output value').textContent()) ?? ''), { approved: true });
      // The key is a payload: only its digest is in the control plane's view.
      assert.ok(
        session.controlPlaneRequests().every((r) => !r.url.includes('ana@example.com') && !(r.body ?? '').includes('ana@example.com')),
      );
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('lists child runs and links a child back to its parent', async () => {
    const parentId = await t.start('parent-work', { items: [3, 4] });
    assert.equal((await t.result(parentId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, parentId);
      const children = page.getByRole('region', { name: 'Child runs' });
      await children.waitFor();
      const links = children.getByRole('link');
      await links.first().waitFor();
      assert.equal(await links.count(), 2);
      await page.getByRole('cell', { name: 'woken when the child run ended' }).first().waitFor();
      const childId = (await links.first().textContent()) ?? '';
      await links.first().click();
      await page.getByRole('heading', { name: `Run ${childId}` }).waitFor();
      await page.getByRole('link', { name: parentId }).click();
      await page.getByRole('heading', { name: `Run ${parentId}` }).waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('refuses a signal body that does not match the declared schema, then sends a valid one', async () => {
    const runId = await t.start('typed-refund', { orderId: 'o-17', amount: 12 });
    await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'refund-approval');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      const name = page.getByLabel('Signal name');
      await name.waitFor();
      assert.equal(await name.inputValue(), 'refund-approval');
      await page.getByText('checked against the signal’s declared JSON Schema').waitFor();
      await page.getByLabel('Signal body (JSON)').fill('{"approved": "yes", "by": ""}');
      await page.getByRole('button', { name: 'Send signal' }).click();
      const problems = page.getByRole('list', { name: 'Problems with the signal body' });
      await problems.waitFor();
      const issues = await problems.getByRole('listitem').allTextContents();
      assert.ok(
        issues.some((i) => i.startsWith('/approved:') && /boolean/.test(i)),
        issues.join(' | '),
      );
      assert.ok(
        issues.some((i) => i.startsWith('/by:') && /short/.test(i)),
        issues.join(' | '),
      );
      await screenshot(page, 'run-signal-invalid');
      assert.deepEqual(await accessibilityViolations(page), []);
      // Nothing was sent.
      assert.equal(session.requests.filter((r) => r.method === 'POST' && r.url.includes('/signals/')).length, 0);
      assert.equal((await t.describe(runId)).run.status, 'suspended');
      // Not JSON at all is said too.
      await page.getByLabel('Signal body (JSON)').fill('{approved: true');
      await page.getByRole('button', { name: 'Send signal' }).click();
      await problems.getByRole('listitem').filter({ hasText: 'the body is not JSON' }).waitFor();

      // The first answer is lost on the way back (the gateway took the signal): sending again
      // reuses the Idempotency-Key, so the run gets the signal once.
      const signals = /\/v1\/runs\/[^/]+\/signals\/refund-approval$/;
      await page.route(signals, async (route) => {
        await route.fetch();
        await route.abort('connectionreset');
      });
      const errorsBefore = session.pageErrors.length;
      await page.getByLabel('Signal body (JSON)').fill('{"approved": true, "by": "maria"}');
      await page.getByRole('button', { name: 'Send signal' }).click();
      await page
        .getByRole('alert')
        .filter({ hasText: /signal/i })
        .waitFor();
      await page.unroute(signals);
      // The dropped connection is the only error the page met.
      for (const error of session.pageErrors.splice(errorsBefore)) assert.match(error, /net::ERR_CONNECTION_RESET/);
      await page.getByRole('button', { name: 'Send signal' }).click();
      await page.getByRole('status').filter({ hasText: 'Signal refund-approval sent' }).waitFor();
      await page.getByRole('status').filter({ hasText: 'It was sent before' }).waitFor();
      const keys = session.requests.filter((r) => r.method === 'POST' && signals.test(r.url)).map((r) => r.headers['idempotency-key']);
      assert.equal(keys.length, 2, JSON.stringify(keys));
      assert.match(keys[0] ?? '', /^console-[0-9a-f]{32}$/);
      assert.equal(keys[1], keys[0]);
      await waitForStatus(page, 'completed');
      const output = page.getByLabel('Output value');
      await output.waitFor();
      assert.deepEqual(JSON.parse((await output.textContent()) ?? ''), {
        orderId: 'o-17',
        amount: 12,
        currency: 'EUR',
        approved: true,
        by: 'maria',
      });
      assert.ok(session.controlPlaneRequests().every((r) => !(r.body ?? '').includes('maria')));
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('shows the tokens of a running model call as they stream', async () => {
    const words = Array.from({ length: 60 }, (_, i) => `tok${i}`);
    await t.setModelScript({ rules: [{ contains: 'console-stream', text: words.join(' '), chunkDelayMs: 150 }] });
    const runId = await t.start('streamer', { prompt: 'console-stream please' });
    await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'go');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      await page.getByTestId('stream-phase').filter({ hasText: 'Streaming' }).waitFor();
      // The run waits for `go`; the form sends it (no schema declared: any body).
      assert.equal(await page.getByLabel('Signal name').inputValue(), 'go');
      await page.getByLabel('Signal body (JSON)').fill('{}');
      await page.getByRole('button', { name: 'Send signal' }).click();
      const live = page.getByLabel('Live output of speak');
      await live.waitFor({ timeout: 30_000 });
      // Part of the answer is on the page while the call still runs.
      await page.getByText(/streaming…$/).waitFor();
      const partial = (await live.textContent()) ?? '';
      assert.ok(partial.startsWith('tok0'), partial);
      assert.notEqual(partial, words.join(' '));
      await screenshot(page, 'run-stream');
      assert.deepEqual(await accessibilityViolations(page), []);
      // The gateway restarts mid-answer, dropping the connection: the page resumes after the last event it got (Last-Event-ID),
      // so the text ends up whole, nothing lost and nothing twice.
      const gateway = t.stack.gateway!;
      const errorsBefore = session.pageErrors.length;
      await gateway.stop();
      await page.getByTestId('stream-phase').filter({ hasText: 'Connection lost' }).waitFor();
      gateway.start();
      await waitReady(`${t.stack.gatewayUrl}/readyz`);
      await page.getByText(/Call \d+: speak — done/).waitFor({ timeout: 30_000 });
      assert.equal(await live.textContent(), words.join(' '));
      // While the gateway was down, the panels' polls failed at the network level (and say so); nothing else went wrong.
      for (const error of session.pageErrors.splice(errorsBefore)) {
        assert.match(
          error,
          /^(Failed to load resource: net::|Access to fetch at 'http:\/\/127\.0\.0\.1:\d+\/v1\/runs\/.* blocked by CORS policy)/,
        );
      }
      const resumed = session.requests.filter(
        (r) => r.url.endsWith(`/v1/runs/${runId}/stream`) && r.headers['last-event-id'] !== undefined,
      );
      assert.ok(resumed.length >= 1, 'the stream was resumed with Last-Event-ID');
      assert.match(resumed[0]!.headers['last-event-id']!, /^\d+$/);
      await page.getByTestId('stream-phase').filter({ hasText: 'The run ended' }).waitFor({ timeout: 30_000 });
      await waitForStatus(page, 'completed');
      // The model call's transcript, from the gateway.
      await page.getByRole('button', { name: /^1 model speak\s*:/ }).click();
      const transcript = page.getByLabel('Transcript of call 1');
      await transcript.waitFor();
      assert.match((await transcript.textContent()) ?? '', /tok59/);
      const streamPath = `/v1/runs/${runId}/stream`;
      assert.ok(session.requests.some((r) => r.url.startsWith(t.stack.gatewayUrl) && new URL(r.url).pathname === streamPath));
      assert.deepEqual(
        session.controlPlaneRequests().filter((r) => new URL(r.url).pathname.endsWith('/stream')),
        [],
        'the token stream never goes through the control plane',
      );
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('forks from a step onto a newer version, showing which journal entries are kept', async () => {
    // A run of version 1, forked onto version 2 (whose step s2 adds 500 instead of 5).
    const started = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'fork-demo', version: '1', input: { base: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(started.status, 201, await started.clone().text());
    const runId = ((await started.json()) as { runId: string }).runId;
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      await page.getByRole('button', { name: /^2 step s2\s*:/ }).click();
      const from = page.getByLabel('Fork from step (journal position)');
      assert.equal(await from.inputValue(), '2');
      await page.getByLabel('Workflow version').selectOption('2');
      await page.getByRole('button', { name: 'Fork…' }).click();
      const dialog = page.getByRole('alertdialog', { name: 'Fork from step 2 onto version 2?' });
      await dialog.waitFor();
      assert.equal(await page.locator(':focus').textContent(), 'Back');
      assert.deepEqual(await dialog.getByRole('list', { name: 'Kept from the journal' }).getByRole('listitem').allTextContents(), [
        '0: step s0',
        '1: step s1',
      ]);
      assert.deepEqual(await dialog.getByRole('list', { name: 'Run live' }).getByRole('listitem').allTextContents(), [
        '2: step s2',
        '3: step s3',
        'and every call after them',
      ]);
      await screenshot(page, 'run-fork');
      assert.deepEqual(await accessibilityViolations(page), []);
      await dialog.getByRole('button', { name: 'Confirm fork' }).click();
      await page.waitForURL((url) => !url.pathname.endsWith(runId));
      const forkId = new URL(page.url()).pathname.split('/').at(-1)!;
      await page.getByRole('heading', { name: `Run ${forkId}` }).waitFor();
      await page.getByRole('link', { name: runId }).waitFor();
      await waitForStatus(page, 'completed');
      const output = page.getByLabel('Output value');
      await output.waitFor();
      assert.deepEqual(JSON.parse((await output.textContent()) ?? ''), { a: 2, b: 20, c: 520, d: '520!', version: '2' });
      // Steps 0 and 1 were kept from the journal: their side effects ran once, in the source run only.
      assert.equal(await t.countEffects(forkId, 's0'), 0);
      assert.equal(await t.countEffects(forkId, 's2'), 1);
      // The timeline says which calls were copied from the source run rather than executed.
      await page.getByRole('button', { name: /^3 step s3\s*:/ }).waitFor();
      const rows = page.locator('button.gantt-row');
      const copied: boolean[] = [];
      for (let i = 0; i < (await rows.count()); i++) copied.push((await rows.nth(i).locator('.badge.copied').count()) > 0);
      assert.deepEqual(copied, [true, true, false, false]);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('forks with a new input, checked in the browser and stored through the gateway', async () => {
    const started = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'fork-demo', version: '1', input: { base: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(started.status, 201, await started.clone().text());
    const runId = ((await started.json()) as { runId: string }).runId;
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      await page.getByLabel('Fork from step (journal position)').fill('0');
      const input = page.getByLabel('New input (JSON)');
      await input.fill('{"base": 100');
      await page.getByRole('button', { name: 'Fork…' }).click();
      await page.getByRole('list', { name: 'Problems with the input' }).filter({ hasText: 'the input is not JSON' }).waitFor();
      await input.fill('{"base": 100}');
      await page.getByRole('button', { name: 'Fork…' }).click();
      const dialog = page.getByRole('alertdialog', { name: 'Fork from step 0 with a new input?' });
      await dialog.waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await dialog.getByRole('button', { name: 'Confirm fork' }).click();
      await page.waitForURL((url) => !url.pathname.endsWith(runId));
      const forkId = new URL(page.url()).pathname.split('/').at(-1)!;
      await page.getByRole('heading', { name: `Run ${forkId}` }).waitFor();
      await waitForStatus(page, 'completed');
      const output = page.getByLabel('Output value');
      await output.waitFor();
      assert.deepEqual(JSON.parse((await output.textContent()) ?? ''), { a: 101, b: 1010, c: 1015, d: '1015!', version: '1' });
      assert.equal(await t.countEffects(forkId, 's0'), 1);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('cancels and terminates runs after a confirmation', async () => {
    const sleeping = await t.start('sleeper', { sleepMs: 600_000 });
    const waiting = await t.start('signal-waiter', { delayMs: 0 });
    await t.waitForRun(sleeping, (r) => r.status === 'suspended');
    await t.waitForRun(waiting, (r) => r.status === 'suspended');
    const session = await openConsole(browser, t);
    try {
      let page = await openRun(session, t, sleeping);
      await page.getByTestId('run-suspension').filter({ hasText: 'sleeping' }).waitFor();
      await page.getByRole('button', { name: 'Cancel run…' }).click();
      const confirm = page.getByRole('alertdialog');
      await confirm.filter({ hasText: `Cancel run ${sleeping}?` }).waitFor();
      // The safe answer has the focus.
      assert.equal(await page.locator(':focus').textContent(), 'Keep running');
      assert.deepEqual(await accessibilityViolations(page), []);
      await page.getByRole('button', { name: 'Keep running' }).click();
      assert.equal(await confirm.count(), 0);
      assert.equal((await t.describe(sleeping)).run.status, 'suspended');
      await page.getByRole('button', { name: 'Cancel run…' }).click();
      await page.getByRole('button', { name: 'Confirm cancel' }).click();
      await waitForStatus(page, 'cancelled');
      assert.equal((await t.describe(sleeping)).run.status, 'cancelled');

      page = await openRun(session, t, waiting);
      await page.getByRole('button', { name: 'Terminate run…' }).click();
      await page.getByRole('alertdialog').filter({ hasText: 'no compensation runs' }).waitFor();
      await page.getByRole('button', { name: 'Confirm terminate' }).click();
      await waitForStatus(page, 'terminated');
      assert.equal((await t.describe(waiting)).run.status, 'terminated');
      // An ended run offers neither.
      assert.equal(await page.getByRole('button', { name: 'Terminate run…' }).count(), 0);
      assert.equal(await statusBadge(page).textContent(), 'terminated');
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it("reads a failed run's error with its stack, on the run and on the failing call", async () => {
    const runId = await t.start('doomed', { secret: 'visa-4242' });
    assert.equal((await t.result(runId)).status, 'failed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      const result = page.getByRole('region', { name: 'Result', exact: true });
      await result.getByRole('paragraph').filter({ hasText: 'card declined for visa-4242' }).waitFor();
      const stack = result.getByLabel('Stack trace');
      await stack.waitFor();
      assert.match((await stack.textContent()) ?? '', /\n\s+at /);
      await page.getByRole('button', { name: /^0 step charge-card\s*:/ }).click();
      const call = page.getByRole('region', { name: 'Call 0: step charge-card' });
      await call.getByRole('paragraph').filter({ hasText: 'card declined for visa-4242' }).waitFor();
      assert.match((await call.getByLabel('Stack trace').textContent()) ?? '', /at /);
      await screenshot(page, 'run-failed');
      assert.deepEqual(await accessibilityViolations(page), []);
      // The error is a payload: the control plane saw neither the message nor the stack.
      assert.ok(session.controlPlaneRequests().every((r) => !r.url.includes('visa-4242') && !(r.body ?? '').includes('visa-4242')));
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('says so, in the panel, when the gateway token lacks the signal scope', async () => {
    const runId = await t.start('signal-waiter', { delayMs: 0 });
    await t.waitForRun(runId, (r) => r.status === 'suspended');
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      // This browser's gateway token may only read.
      await page.evaluate((token) => {
        for (const storage of [localStorage, sessionStorage]) {
          const key = storage === localStorage ? 'cairn.gateways' : 'cairn.gateway-tokens';
          const entries = JSON.parse(storage.getItem(key) ?? '{}') as Record<string, { url: string; token?: string }>;
          for (const entry of Object.values(entries)) if (entry.token !== undefined) entry.token = token;
          storage.setItem(key, JSON.stringify(entries));
        }
      }, readOnlyToken);
      await openRun(session, t, runId);
      // Reading works with the read scope.
      await page.getByLabel('Input value').waitFor();
      await page.getByLabel('Signal body (JSON)').fill('{"n": 1}');
      await page.getByRole('button', { name: 'Send signal' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'The gateway token may not send signals' });
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /CAIRN-1144/);
      assert.match((await alert.textContent()) ?? '', /signal/);
      assert.match((await alert.textContent()) ?? '', /Data planes/);
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'run-missing-scope');
      assert.equal((await t.describe(runId)).run.status, 'suspended');
    } finally {
      await session.close();
    }
  });
});

describe('console: run detail with a payload the gateway cannot decrypt', () => {
  let t: TestStack;
  let browser: Browser;
  // The gateway holds only k1; the worker seals new data with k2, a key the gateway was never given.
  const k1 = `k1:${randomBytes(32).toString('base64')}`;
  const k2 = `k2:${randomBytes(32).toString('base64')}`;
  before(async () => {
    t = await startTestStack({
      name: 'console-run-keys',
      workers: 1,
      gatewayEnv: { CAIRN_DP_ENCRYPTION_KEYS: k1 },
      workerEnv: { CAIRN_DP_ENCRYPTION_KEYS: `${k2},${k1}` },
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('says the gateway lacks the key, in the panel, and still shows what it can read', async () => {
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    await t.waitForRun(runId, (r) => r.status === 'completed');
    const session = await openConsole(browser, t);
    try {
      const page = await openRun(session, t, runId);
      const alert = page.getByRole('alert').filter({ hasText: 'The gateway could not decrypt the result' });
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /CAIRN-3003/);
      assert.match((await alert.textContent()) ?? '', /CAIRN_DP_ENCRYPTION_KEYS/);
      // The journal holds values sealed with k2 too, so the input panel says the same; the timeline is metadata and is all there.
      await page
        .getByRole('region', { name: 'Input', exact: true })
        .getByRole('alert')
        .filter({ hasText: 'The gateway could not decrypt the input' })
        .waitFor();
      await page.getByRole('cell', { name: 'step-3' }).waitFor();
      await page.getByRole('button', { name: /^2 step step-3\s*:/ }).click();
      await page
        .getByRole('region', { name: 'Call 2: step step-3' })
        .getByRole('alert')
        .filter({ hasText: "The gateway could not decrypt this call's result" })
        .waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'run-decrypt-failure');
    } finally {
      await session.close();
    }
  });
});
