// The console's Runners page (issue 20): a runner holding a job shows it with its
// progress; issuing a token shows it once with the command that uses it (and the token
// works), a reload no longer shows it; revoking asks first, takes the row away, and the
// token is refused from then on. Reads at 360 px.
// Env: BASE_URL, ADMIN_TOKEN (login link), BUSY_NAME (a runner holding a job), FILM_TITLE.
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const text = async (loc) => (await loc.textContent()).replace(/\s+/g, ' ').trim();
  const lease = (token) => page.evaluate(async (t) =>
    (await fetch('/api/v1/runner/lease', { method: 'POST', headers: { Authorization: `Bearer ${t}` } })).status,
  token);
  const row = (name) => page.locator('#runners tbody tr', { hasText: name });

  await ctx.step('an admin signs in', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
  });

  await ctx.step('the list shows a busy runner with its job and progress', async () => {
    await page.goto(`${baseUrl}/admin/runners`);
    const r = await text(row(ctx.env('BUSY_NAME')));
    expect(r.includes(ctx.env('FILM_TITLE')) && r.includes('40% · attempt 1'), `the busy row reads "${r}"`);
    expect((await page.locator('nav a[aria-current="page"]').textContent()).trim() === 'Runners', 'the nav marks Runners');
  });

  let token = '';
  await ctx.step('issuing shows the token once, with the command', async () => {
    await page.fill('#runner-name', 'encoder-<1>');
    await page.click('button:text("Issue a token")');
    await page.locator('#runner-token').waitFor({ timeout: 10000 });
    token = (await page.locator('#runner-token').inputValue()).trim();
    expect(/^cgr_[A-Za-z0-9_-]{43}$/.test(token), `the token reads "${token}"`);
    const cmd = await page.locator('#runner-command').inputValue();
    expect(cmd.includes(`CINEGATE_RUNNER_TOKEN=${token} cinegate runner --origin `), `the command reads "${cmd}"`);
    const r = await text(row('encoder-<1>'));
    expect(r.includes('idle') && r.includes('never'), `the new row reads "${r}" (the name must show as text)`);
    await ctx.shot('console-runners-issued');
    expect(await lease(token) === 204, 'the issued token leases (nothing queued: 204)');
  });

  await ctx.step('a reload no longer shows the token', async () => {
    await page.goto(`${baseUrl}/admin/runners`);
    await row('encoder-<1>').waitFor({ timeout: 10000 });
    expect(!(await page.content()).includes(token), 'the token is still on the page');
    expect(await page.locator('#runner-token').count() === 0, 'the token box is still there');
  });

  await ctx.step('revoking asks first, removes the row and the token stops working', async () => {
    let asked = '';
    page.once('dialog', async (d) => { asked = d.message(); await d.accept(); });
    await row('encoder-<1>').locator('button:text("Revoke")').click();
    await page.locator('#runners .notice', { hasText: 'revoked' }).waitFor({ timeout: 10000 });
    expect(asked.includes('encoder-<1>'), `the confirmation said "${asked}"`);
    expect(await row('encoder-<1>').count() === 0, 'the revoked row is still listed');
    expect(await lease(token) === 401, 'the revoked token still leases');
    await ctx.shot('console-runners-revoked');
  });

  await ctx.step('the runners page reads at 360 px', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${baseUrl}/admin/runners`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
    await ctx.shot('console-runners-360');
  });

  // The one 401 is the revoked token's lease, asked for on purpose.
  ctx.assertNoErrors([/status of 401/]);
});
