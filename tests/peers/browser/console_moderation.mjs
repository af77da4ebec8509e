// The console's Comments and System pages (issue 15): the moderation queue lists a
// reported comment with its film, author and report count and a held one; hiding a row
// updates it in place and takes it out of the queue (it moves to the Hidden list);
// deleting asks first and leaves a tombstone; an action on a comment deleted meanwhile
// shows the API's reason and code in the page; the hold words are listed. The system page
// shows the version and the providers and none of the configured secrets. Both read at
// 360 px.
// Env: BASE_URL, ADMIN_TOKEN (login link), HIDE_ID and DELETE_ID (reported comments),
// HELD_ID (a held one), AUTHOR_EMAIL and AUTHOR_ACCESS (the comments' author), VERSION,
// SECRETS (comma-separated).
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const hide = ctx.env('HIDE_ID');
  const del = ctx.env('DELETE_ID');
  const held = ctx.env('HELD_ID');
  const row = (id) => page.locator(`#comment-${id}`);
  const text = async (loc) => (await loc.textContent()).replace(/\s+/g, ' ').trim();

  await ctx.step('an admin signs in', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
  });

  await ctx.step('the queue lists the reported and the held comments', async () => {
    await page.goto(`${baseUrl}/admin/comments`);
    await row(hide).waitFor({ timeout: 10000 });
    const r = await text(row(hide));
    expect(r.includes('Rude words <b>here</b>'), `the row reads "${r}" (the markup must show as text)`);
    expect(r.includes('Moderated <film>'), `the row names the film: "${r}"`);
    expect(r.includes(ctx.env('AUTHOR_EMAIL')), `the row names the author: "${r}"`);
    expect(await text(row(hide).locator('td.num')) === '1', 'one report');
    expect(await text(row(held).locator('.badge')) === 'held', 'the held comment is listed as held');
    expect(await row(held).locator('button:text("Restore")').count() === 1, 'a held comment can be restored');
    const words = await text(page.locator('ul.words'));
    expect(words.includes('spoiler') && words.includes('scam'), `hold words: "${words}"`);
    await ctx.shot('console-comments');
  });

  await ctx.step('hiding updates the row in place and takes it out of the queue', async () => {
    await row(hide).locator('button:text("Hide")').click();
    await page.waitForFunction((id) => {
      const b = document.querySelector(`#comment-${id} .badge`);
      return b && b.textContent.trim() === 'hidden';
    }, hide, { timeout: 10000 });
    expect(await row(hide).locator('button:text("Restore")').count() === 1, 'a hidden row offers Restore');
    await page.goto(`${baseUrl}/admin/comments`);
    await row(del).waitFor({ timeout: 10000 });
    expect(await row(hide).count() === 0, 'the hidden comment is still in the queue');
    await page.goto(`${baseUrl}/admin`);
    const waiting = await text(page.locator('a[href="/admin/comments"]:has(strong)'));
    expect(waiting.startsWith('2 reported or held'), `the dashboard says "${waiting}"`);
    await page.goto(`${baseUrl}/admin/comments?show=hidden`);
    await row(hide).waitFor({ timeout: 10000 });
    await ctx.shot('console-comments-hidden');
  });

  await ctx.step('deleting asks first and leaves a tombstone', async () => {
    await page.goto(`${baseUrl}/admin/comments`);
    let asked = '';
    page.once('dialog', async (d) => { asked = d.message(); await d.accept(); });
    await row(del).locator('button:text("Delete")').click();
    await page.waitForFunction((id) => {
      const b = document.querySelector(`#comment-${id} .badge`);
      return b && b.textContent.trim() === 'deleted';
    }, del, { timeout: 10000 });
    expect(asked.includes('Moderated <film>'), `the confirmation said "${asked}"`);
    expect(await row(del).locator('button').count() === 0, 'a tombstone offers no action');
    await ctx.shot('console-comments-after-delete');
  });

  await ctx.step('an action on a comment its author deleted meanwhile shows the reason', async () => {
    await page.goto(`${baseUrl}/admin/comments`);
    await row(held).waitFor({ timeout: 10000 });
    const status = await page.evaluate(async ({ id, token }) =>
      (await fetch(`/api/v1/comments/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } })).status,
    { id: held, token: ctx.env('AUTHOR_ACCESS') });
    expect(status === 204, `the author's delete answered ${status}`);
    await row(held).locator('button:text("Restore")').click();
    const err = page.locator('#flash #error');
    await err.waitFor({ timeout: 10000 });
    const t = await text(err);
    expect(t.includes('comment_deleted') && t.includes('its author deleted this comment'), `the page says "${t}"`);
    await ctx.shot('console-comments-stale-action');
  });

  await ctx.step('the comments page reads at 360 px', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${baseUrl}/admin/comments`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
    await ctx.shot('console-comments-360');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await ctx.step('the system page shows the version and the providers', async () => {
    await page.goto(`${baseUrl}/admin/system`);
    expect(await text(page.locator('#version')) === ctx.env('VERSION'), 'version');
    const signin = await text(page.locator('#signin-providers'));
    expect(/on facebook/.test(signin) && /off google/.test(signin), `sign-in: "${signin}"`);
    const pay = await text(page.locator('#payment-providers'));
    expect(/on paypal/.test(pay) && /on kakaopay/.test(pay) && /on dev/.test(pay) && /off naverpay/.test(pay),
      `payments: "${pay}"`);
    // disk.min_free_bytes = 50000000 in this test's server, sized like the other figures.
    const floor = await text(page.locator('#disk-floor'));
    expect(/^50 MB disk\.min_free_bytes: /.test(floor), `kept free: "${floor}"`);
    expect(await page.locator('#disk-below-floor').count() === 0, 'the floor is not reached here');
    // A float reads as a person writes it (the default tls.renew_after is 2/3).
    const renew = page.locator('tr:has(code:text-is("tls.renew_after")) td:nth-child(2)');
    expect(await text(renew) === '0.667', `tls.renew_after reads "${await text(renew)}"`);
    const bytes = page.locator('tr:has(code:text-is("disk.min_free_bytes")) td:nth-child(2)');
    expect(await text(bytes) === '50000000', `disk.min_free_bytes reads "${await text(bytes)}"`);
    await ctx.shot('console-system');
  });

  await ctx.step('the system page shows no secret', async () => {
    const html = await page.content();
    for (const s of ctx.env('SECRETS').split(',')) {
      expect(!html.includes(s), `the secret ${s} is on the page`);
    }
    const secret = page.locator('tr:has(code:text-is("payments.paypal.client_secret")) td.secret');
    expect(await text(secret) === '••• (set)', `paypal's secret reads "${await text(secret)}"`);
    const unset = page.locator('tr:has(code:text-is("payments.naverpay.client_secret")) td.secret');
    expect(await text(unset) === '(not set)', `naverpay's secret reads "${await text(unset)}"`);
  });

  await ctx.step('the system page reads at 360 px', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${baseUrl}/admin/system`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
    await ctx.shot('console-system-360');
  });

  // Chromium logs the refused restore (409) as a console error; it is the point of that step.
  ctx.assertNoErrors([/status of 409/, /Response Status Error Code 409/]);
});
