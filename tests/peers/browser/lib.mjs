// The Chromium test peer: Debian's /usr/bin/chromium driven by playwright-core, for the
// admin console's browser tests (issue 15). A script is
//
//   import { run, expect } from './lib.mjs';
//   run(async (ctx) => {
//     await ctx.step('dashboard loads', async () => { await ctx.page.goto(ctx.baseUrl + '/admin'); });
//     ctx.assertNoErrors();
//   });
//
// and prints one `ok <step>` line per step. On failure it prints the error, saves
// FAILED-<script>-<n>.png (n = the failing step's number) and exits 1; the browser is
// always closed. Env: BASE_URL (the server under test, if the script has one), SHOTS_DIR
// (default <repo>/target/console-shots), BROWSER_TIMEOUT_MS (whole script, default 120000),
// CHROMIUM (default /usr/bin/chromium).

import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const shotsDir = process.env.SHOTS_DIR || path.join(repoRoot, 'target/console-shots');

// test-peers.md section 5: the flags that make Debian's Chromium run headless in a
// container without reaching out to Google.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export class ExpectationError extends Error {}

/** Throws `msg` unless `cond` holds. */
export function expect(cond, msg) {
  if (!cond) throw new ExpectationError(msg);
}

/**
 * A fresh persistent context in its own temporary profile (Playwright refuses
 * --user-data-dir in args), with console errors and page errors of every page collected.
 */
export async function launch() {
  const profile = await mkdtemp(path.join(tmpdir(), 'cinegate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
  });
  const errors = [];
  const watch = (page) => {
    // CSP violations reach the console as errors ("Refused to ..."), as do failed loads.
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console error on ${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`uncaught on ${page.url()}: ${e.message}`));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  const page = context.pages()[0] || (await context.newPage());
  return {
    context,
    page,
    errors,
    /** Errors not matched by any of `ignore` (regexps) since the last clearErrors(). */
    pendingErrors(ignore = []) {
      return errors.filter((e) => !ignore.some((re) => re.test(e)));
    },
    assertNoErrors(ignore = []) {
      const left = this.pendingErrors(ignore);
      expect(left.length === 0, `the browser reported errors:\n  ${left.join('\n  ')}`);
    },
    clearErrors() {
      errors.length = 0;
    },
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Saves a full-page PNG as $SHOTS_DIR/<name>.png and returns its path. */
export async function shot(page, name) {
  await mkdir(shotsDir, { recursive: true });
  const file = path.join(shotsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Runs `body(ctx)` in a fresh browser. ctx: page, context, baseUrl, env(name) (a required
 * variable), step(name, fn), shot(name), expect, assertNoErrors(ignore), pendingErrors,
 * clearErrors, errors.
 */
export function run(body) {
  const script = path.basename(process.argv[1] || 'script', '.mjs');
  const timeoutMs = Number(process.env.BROWSER_TIMEOUT_MS || 120000);
  let browser = null;
  let stepNo = 0;
  let stepName = '(setup)';

  const main = async () => {
    browser = await launch();
    const ctx = {
      ...browser,
      assertNoErrors: (ignore) => browser.assertNoErrors(ignore),
      pendingErrors: (ignore) => browser.pendingErrors(ignore),
      clearErrors: () => browser.clearErrors(),
      baseUrl: (process.env.BASE_URL || '').replace(/\/+$/, ''),
      expect,
      env(name) {
        const v = process.env[name];
        expect(v !== undefined && v !== '', `${script}: environment variable ${name} is required`);
        return v;
      },
      async step(name, fn) {
        stepNo += 1;
        stepName = name;
        const r = await fn();
        console.log(`ok ${name}`);
        return r;
      },
      shot: (name) => shot(browser.page, name),
    };
    await body(ctx);
  };

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });

  (async () => {
    let code = 0;
    try {
      await Promise.race([main(), timeout]);
    } catch (e) {
      code = 1;
      const detail = e instanceof ExpectationError ? e.message : e?.stack || String(e);
      console.log(`FAILED ${script} step ${stepNo} "${stepName}": ${detail}`);
      console.error(`FAILED ${script} step ${stepNo} "${stepName}": ${detail}`);
      if (browser) {
        const file = await shot(browser.page, `FAILED-${script}-${stepNo}`).catch(() => null);
        if (file) console.error(`screenshot: ${file}`);
      }
    } finally {
      clearTimeout(timer);
      if (browser) await browser.close();
    }
    process.exit(code);
  })();
}
