// The workflow registry and the run form in a real browser on the local stack: the registry with
// versions, settings, flow control and deprecation; a run started from the form generated from the
// input schema (the input goes to the gateway, never to the control plane); a field that fails the
// schema; and the form's link opened signed out, through sign-in, back to the form.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

/** The run ID of the run page the browser is on. */
async function landedRunId(page: Page): Promise<string> {
  await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
  const runId = new URL(page.url()).pathname.split('/').pop()!;
  await page.getByRole('heading', { name: `Run ${runId}` }).waitFor();
  return runId;
}

/** Makes this browser use another gateway token for every data plane (as if one had pasted it). */
async function useGatewayToken(page: Page, token: string): Promise<void> {
  await page.evaluate((t) => {
    const tokens = JSON.parse(sessionStorage.getItem('cairn.gateway-tokens') ?? '{}') as Record<string, { url: string; token: string }>;
    for (const id of Object.keys(tokens)) tokens[id]!.token = t;
    sessionStorage.setItem('cairn.gateway-tokens', JSON.stringify(tokens));
  }, token);
}

/** A gateway token that may read but not start runs. */
const READ_ONLY = `cgt_read_${randomUUID()}`;

describe('console: workflows and the run form', () => {
  let t: TestStack;
  let browser: Browser;
  let cpUrl: string;
  before(async () => {
    t = await startTestStack({ name: 'console-workflows', workers: 1, gatewayTokens: [`${READ_ONLY}:read`] });
    browser = await launchBrowser();
    cpUrl = t.stack.controlPlanes[0]!.httpUrl;
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('lists the registry and shows a workflow with its versions, settings and flow control; deprecates a version', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByRole('link', { name: 'Workflows', exact: true }).click();
      await page.getByRole('heading', { name: 'Workflows', level: 1 }).waitFor();
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'typed-refund', exact: true }) });
      await row.waitFor();
      assert.ok(await row.getByRole('link', { name: 'Runs of typed-refund' }).isVisible());
      await page
        .getByRole('row')
        .filter({ has: page.getByRole('link', { name: 'fork-demo', exact: true }) })
        .waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'workflows');

      await row.getByRole('link', { name: 'typed-refund', exact: true }).click();
      await page.getByRole('heading', { name: 'Workflow typed-refund' }).waitFor();
      const v1 = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: /^1/ }) });
      await v1.waitFor();
      const text = (await v1.textContent()) ?? '';
      assert.match(text, /4 attempts, first wait 100 ms/, 'the retry policy declared in code');
      assert.match(text, /run 1 h 0 min, step 20\.0 s/, 'the timeouts declared in code');
      assert.match(text, /sha256:[0-9a-f]{12}/, 'the input schema is catalogued; its digest is shown');

      // The schemas declared in code, read from the gateway: the input's fields and the signal's.
      const inputSchema = page.getByLabel('Input schema of version 1');
      await inputSchema.waitFor();
      const declared = JSON.parse((await inputSchema.textContent()) ?? '') as { properties: Record<string, unknown>; required: string[] };
      assert.deepEqual(Object.keys(declared.properties).sort(), ['amount', 'currency', 'orderId']);
      await page.getByLabel('Schema of signal refund-approval of version 1').waitFor();

      // Flow control: set a concurrency limit; the control plane holds it.
      await page.getByLabel('Concurrency limit (empty: none)').fill('3');
      await page.getByRole('button', { name: 'Save flow control' }).click();
      await page.getByText('Now: at most 3 running').waitFor();
      const stored = (await (
        await fetch(`${cpUrl}/v1/projects/default/workflows/typed-refund`, {
          headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
        })
      ).json()) as { workflow: { flowControl: { concurrency: { limit: number } | null } } };
      assert.equal(stored.workflow.flowControl.concurrency?.limit, 3);
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'workflow');

      // Its runs: the runs list filtered to the workflow.
      await page.getByRole('link', { name: 'Runs of typed-refund' }).click();
      await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
      assert.equal(await page.getByLabel('Workflow', { exact: true }).inputValue(), 'typed-refund');

      // Deprecate fork-demo@1 (fork-demo@2 stays): confirmed first, then shown as deprecated.
      await page.goto(`${cpUrl}/p/default/workflows/fork-demo`);
      await page.getByRole('heading', { name: 'Workflow fork-demo' }).waitFor();
      await page.getByRole('button', { name: 'Deprecate… version 1' }).click();
      await page.getByRole('button', { name: 'Deprecate 1', exact: true }).click();
      const deprecatedRow = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: /^1/ }) });
      await deprecatedRow.getByText('deprecated').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Deprecate… version 2' }).count(), 1, 'version 2 is untouched');
      const started = await t.gateway('POST', '/v1/runs', {
        body: JSON.stringify({ workflow: 'fork-demo', version: '1', input: { base: 1 } }),
        headers: { 'content-type': 'application/json' },
      });
      assert.ok(started.status >= 400, `a run of the deprecated version is refused (got ${started.status})`);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('starts a run from the form generated from the input schema; the input goes to the gateway only', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.goto(`${cpUrl}/p/default/workflows`);
      await page.getByRole('link', { name: 'Start a run of typed-refund' }).click();
      await page.getByRole('heading', { name: 'Start typed-refund' }).waitFor();
      await page.getByLabel('orderId').fill('ORD-FORM-4471');
      await page.getByLabel('amount').fill('12.5');
      assert.equal(await page.getByLabel('currency').inputValue(), 'EUR', "the schema's default is filled in");
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'run-form');
      await page.getByRole('button', { name: 'Start run' }).click();

      const runId = await landedRunId(page);
      const input = page.getByLabel('Input value');
      await input.waitFor();
      assert.deepEqual(JSON.parse((await input.textContent()) ?? ''), { orderId: 'ORD-FORM-4471', amount: 12.5, currency: 'EUR' });
      await t.waitForEffect(runId, 'typed-refund:requested');
      assert.equal((await t.signal(runId, 'refund-approval', { approved: true, by: 'ops' })).status, 202);
      const result = await t.result(runId);
      assert.equal(result.status, 'completed', JSON.stringify(result));
      assert.deepEqual(result.output, { orderId: 'ORD-FORM-4471', amount: 12.5, currency: 'EUR', approved: true, by: 'ops' });
      for (const request of session.controlPlaneRequests()) {
        assert.ok(!`${request.url} ${request.body ?? ''}`.includes('ORD-FORM-4471'), `the input reached the control plane: ${request.url}`);
      }
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('shows the message of a field that fails the schema next to it, checked in the browser and by the gateway', async () => {
    const session = await openConsole(browser, t);
    const runsOfTypedRefund = async (): Promise<number> => {
      const res = await fetch(`${cpUrl}/v1/projects/default/runs?workflow=typed-refund&limit=200`, {
        headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
      });
      return ((await res.json()) as { runs: unknown[] }).runs.length;
    };
    const before = await runsOfTypedRefund();
    try {
      const { page } = session;
      await page.goto(`${cpUrl}/p/default/workflows/typed-refund/run`);
      await page.getByRole('heading', { name: 'Start typed-refund' }).waitFor();
      const amountField = page.locator('.form-group').filter({ has: page.getByLabel('amount') });

      // Checked in this browser first: nothing is sent.
      await page.getByLabel('orderId').fill('ORD-BAD');
      await page.getByLabel('amount').fill('-5');
      await page.getByRole('button', { name: 'Start run' }).click();
      await amountField.getByText('must be >= 0').waitFor();
      assert.match(page.url(), /\/workflows\/typed-refund\/run/, 'still on the form');
      const posts = () => session.requests.filter((r) => r.method === 'POST' && r.url.startsWith(t.stack.gatewayUrl));
      assert.deepEqual(posts(), [], 'nothing was sent');
      assert.deepEqual(await accessibilityViolations(page), []);

      // Edited as JSON, the input goes to the gateway, which checks it too: its 400 names the
      // field, and back in the form the message is next to it.
      await page.getByRole('button', { name: 'Edit as JSON' }).click();
      await page.getByLabel('Input (JSON)').fill('{"orderId": "ORD-BAD", "amount": -7, "currency": "EUR"}');
      await page.getByRole('button', { name: 'Start run' }).click();
      await page.getByRole('alert').filter({ hasText: '/input/amount: must be >= 0' }).waitFor();
      await page.getByRole('alert').filter({ hasText: 'The run did not start' }).filter({ hasText: 'CAIRN-1116' }).waitFor();
      assert.equal(posts().length, 1, 'the gateway was asked once');
      await page.getByRole('button', { name: 'Edit in the form' }).click();
      assert.equal(await page.getByLabel('amount').inputValue(), '-7');
      await amountField.getByText('must be >= 0').waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      assert.equal(await runsOfTypedRefund(), before, 'no run was started');
    } finally {
      await session.close();
    }
  });

  it("opens the form's link signed out: sign in, back to the form, set the gateway, start the run", async () => {
    const first = await openConsole(browser, t);
    let link: string;
    try {
      await first.page.goto(`${cpUrl}/p/default/workflows/typed-refund/run`);
      await first.page.getByRole('heading', { name: 'Start typed-refund' }).waitFor();
      await first.page.getByLabel('orderId').waitFor();
      link = await first.page.getByLabel('Link to this form').inputValue();
    } finally {
      await first.close();
    }
    assert.equal(link, `${cpUrl}/p/default/workflows/typed-refund/run?version=1`);

    const session = await openConsole(browser, t, { signedIn: false });
    try {
      const { page } = session;
      await page.goto(link);
      await page.getByRole('heading', { name: 'Sign in to Cairn' }).waitFor();
      await page.getByLabel('API key').fill(t.stack.secrets.apiToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Start typed-refund' }).waitFor();
      // This browser has never been told where the gateway is: the form says so and asks.
      await page.getByLabel('Gateway URL').fill(t.stack.gatewayUrl);
      assert.equal(await page.getByLabel('Version').inputValue(), '1');
      await page.getByLabel('Gateway token').fill(t.stack.secrets.gatewayToken);
      assert.deepEqual(await accessibilityViolations(page), []);
      await page.getByRole('button', { name: 'Use this gateway' }).click();
      await page.getByLabel('orderId').fill('ORD-LINK-1');
      await page.getByLabel('amount').fill('3');
      await page.getByRole('button', { name: 'Start run' }).click();
      const runId = await landedRunId(page);
      await t.waitForEffect(runId, 'typed-refund:requested');
      assert.equal((await t.signal(runId, 'refund-approval', { approved: false, by: 'finance' })).status, 202);
      const result = await t.result(runId);
      assert.deepEqual(result.output, { orderId: 'ORD-LINK-1', amount: 3, currency: 'EUR', approved: false, by: 'finance' });
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });
  it('says which scope is missing when the gateway token may not start runs', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await useGatewayToken(page, READ_ONLY);
      await page.goto(`${cpUrl}/p/default/workflows/typed-refund/run`);
      await page.getByLabel('orderId').fill('ORD-SCOPE');
      await page.getByLabel('amount').fill('1');
      await page.getByRole('button', { name: 'Start run' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'The run did not start' });
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /needs the scope start/);
      assert.match(page.url(), /\/workflows\/typed-refund\/run/, 'still on the form');
      assert.deepEqual(await accessibilityViolations(page), []);
    } finally {
      await session.close();
    }
  });
});
