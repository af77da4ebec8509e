// The notification pages (issue 17): the console's System page lists the dead letters and
// retries one with its button (htmx, the CSRF header from the layout); the viewer's
// account page switches "new film" mail and the mail language, at 360 px too.
// Env: BASE_URL, ADMIN_TOKEN, VIEWER_TOKEN (login-link tokens), DEAD_ID (a dead letter).
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const dead = ctx.env('DEAD_ID');

  await ctx.step('the System page lists the dead letter', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
    await page.goto(`${baseUrl}/admin/system`);
    await page.waitForSelector('#dead-letters');
    const button = page.locator(`#dead-letters button[hx-post="/admin/system/dead/${dead}/retry"]`);
    expect((await button.count()) === 1, 'a Retry button for the dead letter');
    await ctx.shot('console-system-dead-letters');
  });

  await ctx.step('Retry puts it back in the outbox and redraws the card', async () => {
    await page.locator(`#dead-letters button[hx-post="/admin/system/dead/${dead}/retry"]`).click();
    await page.waitForFunction(
      (id) => !document.querySelector(`#dead-letters button[hx-post="/admin/system/dead/${id}/retry"]`),
      dead,
      { timeout: 10000 },
    );
  });

  await ctx.step('the account page switches new-film mail and the language', async () => {
    await page.goto(`${baseUrl}/sign-in?token=${ctx.env('VIEWER_TOKEN')}`);
    await page.waitForURL((u) => !u.pathname.startsWith('/sign-in'), { timeout: 10000 });
    await page.setViewportSize({ width: 360, height: 800 });
    await page.goto(`${baseUrl}/account`);
    const form = page.locator('#notification-prefs');
    await form.waitFor();
    const email = form.locator('input[name="new_films_email"]');
    expect(!(await email.isChecked()), 'off by default');
    await email.check();
    await form.locator('select[name="language"]').selectOption('ko');
    await form.locator('button[type="submit"]').click();
    await page.waitForFunction(
      () => (document.querySelector('#notifications-saved')?.textContent || '').trim().length > 0,
      null,
      { timeout: 10000 },
    );
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(scroll <= 360, `the page scrolls sideways at 360 px (${scroll})`);
    await ctx.shot('viewer-account-notifications');
    await page.reload();
    await form.waitFor();
    expect(await form.locator('input[name="new_films_email"]').isChecked(), 'saved: new-film mail on');
    const lang = await form.locator('select[name="language"]').inputValue();
    expect(lang === 'ko', `saved: language ${lang}`);
  });

  ctx.assertNoErrors();
});
