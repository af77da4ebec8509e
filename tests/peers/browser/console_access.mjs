// The console's door (issue 15): an admin signs in with a one-time link and reaches the
// dashboard; the token leaves the address bar; pages carry the CSP; a write without the
// CSRF header is refused; signing out ends the session; a viewer gets a 403 page, never
// data; the dashboard reads at 360 px.
// Env: BASE_URL, ADMIN_TOKEN, VIEWER_TOKEN (login-link tokens); the server has one draft film.
import { run } from './lib.mjs';

// Chromium logs every 4xx answer as a console error; those below are the point of the test.
const EXPECTED = [/status of 40[13]/, /Response Status Error Code 40[13]/];

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;

  await ctx.step('a signed-out visit goes to the sign-in page', async () => {
    await page.goto(`${baseUrl}/admin/films?page=2`);
    const u = new URL(page.url());
    expect(u.pathname === '/admin/sign-in', `landed on ${page.url()}`);
    expect(u.searchParams.get('next') === '/admin/films?page=2', `next is ${u.searchParams.get('next')}`);
    await page.goto(`${baseUrl}/admin`);
    await page.waitForSelector('#link-form');
    await ctx.shot('console-signin');
  });

  await ctx.step('an admin signs in with a login link and reaches the dashboard', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
    await page.waitForSelector('h1:text("Dashboard")');
    expect(!page.url().includes('token='), `the token is still in the address bar: ${page.url()}`);
    const history = await page.evaluate(() => history.length);
    expect(history >= 1, 'history');
  });

  await ctx.step('the dashboard counts the films by state', async () => {
    const draft = page.locator('.counts a[href="/admin/films?state=draft"]');
    await draft.waitFor({ timeout: 10000 });
    const text = (await draft.textContent()).replace(/\s+/g, ' ').trim();
    expect(text === 'draft 1', `the draft count reads "${text}"`);
    await ctx.shot('console-dashboard');
  });

  await ctx.step('pages carry a strict CSP and refuse framing', async () => {
    const res = await page.goto(`${baseUrl}/admin`);
    const h = res.headers();
    const csp = h['content-security-policy'] || '';
    expect(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'),
      `CSP: ${csp}`);
    expect(csp.includes("frame-ancestors 'none'"), `CSP: ${csp}`);
    expect(h['x-frame-options'] === 'DENY', 'X-Frame-Options');
    expect((h['cache-control'] || '').includes('no-store'), 'Cache-Control');
  });

  await ctx.step('a write without the CSRF header is refused', async () => {
    const status = await page.evaluate(async () =>
      (await fetch('/admin/sign-out', { method: 'POST' })).status);
    expect(status === 403, `sign-out without the header answered ${status}`);
    // Still signed in.
    const res = await page.goto(`${baseUrl}/admin`);
    expect(res.status() === 200, `after the refused write the dashboard answered ${res.status()}`);
  });

  await ctx.step('the dashboard reads at 360 px', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${baseUrl}/admin`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
    await ctx.shot('console-dashboard-360');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await ctx.step('signing out ends the session', async () => {
    await page.goto(`${baseUrl}/admin`);
    await page.click('button:text("Sign out")');
    await page.waitForURL((u) => u.pathname === '/admin/sign-in', { timeout: 10000 });
    await page.goto(`${baseUrl}/admin`);
    expect(new URL(page.url()).pathname === '/admin/sign-in', `after signing out /admin showed ${page.url()}`);
  });

  await ctx.step('a viewer gets a 403 page, not the console', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('VIEWER_TOKEN')}`);
    await page.waitForSelector('#error', { timeout: 10000 });
    const res = await page.goto(`${baseUrl}/admin`);
    expect(res.status() === 403, `a viewer's /admin answered ${res.status()}`);
    const text = await page.textContent('#error');
    expect(text.includes('admin_only'), `the 403 page says ${text}`);
    expect((await page.locator('#jobs').count()) === 0, 'the viewer saw the dashboard');
    await ctx.shot('console-viewer-403');
  });

  await ctx.step('a spent or wrong link shows the reason in the page', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    const err = page.locator('#flash #error');
    await err.waitFor({ timeout: 10000 });
    const text = await err.textContent();
    expect(text.includes('invalid_token'), `the spent link shows ${text}`);
    await ctx.shot('console-signin-spent-link');
  });

  ctx.assertNoErrors(EXPECTED);
});
