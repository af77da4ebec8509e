// The API reference page (issue 18): `/api/docs/` is Swagger UI, served from the binary,
// drawing the server's own `/api/v1/openapi.json` under the pages' strict CSP. Checks that
// it renders every tag's operations with no CSP violation or script error, that an
// operation expands to show its answers and the shared error shape, that no request leaves
// the origin (no validator badge, no CDN), and takes a screenshot.
// Env: BASE_URL, OPERATIONS (how many operations the document has).
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const operations = Number(ctx.env('OPERATIONS'));
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(baseUrl)) foreign.push(r.url());
  });

  await ctx.step('the page renders every operation of the document', async () => {
    // The console error of a CSP violation does not say which file caused it; this does.
    await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) =>
      console.log('csp violation:', e.violatedDirective, e.sourceFile, e.lineNumber, e.columnNumber)));
    page.on('console', (m) => { if (m.text().startsWith('csp violation:')) console.log(m.text()); });
    await page.goto(`${baseUrl}/api/docs`);
    await page.waitForURL((u) => u.pathname === '/api/docs/', { timeout: 10000 });
    await page.waitForSelector('.opblock', { timeout: 20000 });
    const title = await page.textContent('.info .title');
    expect(/cinegate/.test(title), `the title reads ${title}`);
    const shown = await page.$$eval('.opblock', (els) => els.length);
    expect(shown === operations, `${shown} operations shown, the document has ${operations}`);
    await ctx.shot('api-docs');
  });

  await ctx.step('an operation opens to its answers and the error shape', async () => {
    await page.click('#operations-films-startPlayback .opblock-summary');
    await page.waitForSelector('#operations-films-startPlayback .responses-table', { timeout: 10000 });
    const codes = await page.$$eval(
      '#operations-films-startPlayback .responses-table .response-col_status',
      (cells) => cells.map((c) => c.textContent.trim()),
    );
    for (const c of ['200', '401', '404']) {
      expect(codes.includes(c), `startPlayback's answers ${codes.join(',')} lack ${c}`);
    }
    await ctx.shot('api-docs-operation');
  });

  await ctx.step('nothing was fetched from another origin, no CSP violation', async () => {
    expect(foreign.length === 0, `requests left the origin: ${foreign.join(', ')}`);
    ctx.assertNoErrors();
  });
});
