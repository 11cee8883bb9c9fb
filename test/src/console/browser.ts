// A real browser for the console's tests: Debian's Chromium driven by Playwright (playwright-core,
// which downloads no browser of its own). Collects every request the page makes, so a test can
// check what reached the control plane, and runs axe's accessibility checks on a page.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Page, type Request } from 'playwright-core';
import { consoleSignInUrl } from '@cairn/dev';
import type { TestStack } from '../harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Where each page's screenshot is written (test artifacts; refreshed copies live in docs/console). */
export const screenshotDir = process.env['CAIRN_SCREENSHOT_DIR'] ?? join(root, 'build', 'console-screenshots');
/** The screenshots the docs show; `CAIRN_UPDATE_SCREENSHOTS=1` makes the tests refresh them. */
export const docsScreenshotDir = join(root, 'docs', 'console');

const executablePath = process.env['CAIRN_CHROMIUM'] ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(executablePath)) {
    throw new Error(
      `No Chromium at ${executablePath}: install Debian's package (apt-get install -y chromium) or set CAIRN_CHROMIUM to a Chromium binary.`,
    );
  }
  return chromium.launch({
    executablePath,
    headless: true,
    // The machine's network is closed: Chromium's own background traffic would only fail.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A request the page made, as the server received it. */
export interface SeenRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: string | null;
}

export interface ConsoleSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every request the page sent, in order. */
  readonly requests: SeenRequest[];
  /** Requests to the control plane's origin. */
  controlPlaneRequests(): SeenRequest[];
  /** Console errors and uncaught exceptions in the page. */
  readonly pageErrors: string[];
  close(): Promise<void>;
}

/** Opens the console signed in for the stack (the link `cairn dev` prints) and waits for the runs list. */
export async function openConsole(browser: Browser, t: TestStack, options: { signedIn?: boolean } = {}): Promise<ConsoleSession> {
  const cpUrl = t.stack.controlPlanes[0]!.httpUrl;
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  const requests: SeenRequest[] = [];
  const pageErrors: string[] = [];
  const record = (request: Request): void => {
    requests.push({ url: request.url(), method: request.method(), headers: request.headers(), body: request.postData() });
  };
  page.on('request', record);
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  if (options.signedIn ?? true) {
    await page.goto(consoleSignInUrl(cpUrl, t.stack));
    await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
  } else {
    await page.goto(cpUrl);
  }
  const origin = new URL(cpUrl).origin;
  return {
    context,
    page,
    requests,
    pageErrors,
    controlPlaneRequests: () => requests.filter((r) => new URL(r.url).origin === origin),
    close: () => context.close(),
  };
}

/** axe's WCAG 2.1 A/AA checks on the page as it is; answers the violations, described. */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return results.violations.map(
    (v) =>
      `${v.id} (${v.impact ?? 'unknown'}): ${v.help} — ${v.nodes
        .map((n) => n.target.join(' '))
        .slice(0, 3)
        .join('; ')}`,
  );
}

/**
 * Writes a full-page screenshot of the page as `<name>.png` among the test artifacts, and with
 * `CAIRN_UPDATE_SCREENSHOTS=1` copies it over the one in docs/console (commit those).
 */
/** The tallest screenshot kept, in CSS pixels. */
const SCREENSHOT_MAX_HEIGHT = 2400;

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  // The whole page, down to a bound: a long table (the residency report) would make a picture of
  // several megabytes that shows nothing more.
  const width = page.viewportSize()?.width ?? 1400;
  const height = Number(await page.evaluate('document.documentElement.scrollHeight'));
  await page.screenshot({ path, fullPage: true, clip: { x: 0, y: 0, width, height: Math.min(height, SCREENSHOT_MAX_HEIGHT) } });
  if (process.env['CAIRN_UPDATE_SCREENSHOTS'] === '1') {
    mkdirSync(docsScreenshotDir, { recursive: true });
    copyFileSync(path, join(docsScreenshotDir, `${name}.png`));
  }
  return path;
}
