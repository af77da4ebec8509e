// The console's orders and users pages (issue 15): a dev-provider order is refunded from
// its page (the confirmation names film, buyer and amount), reconciliation reports what it
// did; the users page finds the buyer, disables and enables them, gives a film and revokes
// it, and makes a one-time sign-in link. Screenshots of the four pages, also at 360 px.
// Env: BASE_URL, ADMIN_TOKEN (login-link token of an admin), ORDER_ID (a captured dev
// order, whose buyer has watched a segment), FILM_ID (its film), GIVE_FILM_ID (another
// film), BUYER_EMAIL.
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const order = ctx.env('ORDER_ID');
  const buyer = ctx.env('BUYER_EMAIL');
  const dialogs = [];
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.accept();
  });
  const narrow = async (name) => {
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `${name} is ${overflow} px wider than a 360 px screen`);
    await ctx.shot(`${name}-360`);
    await page.setViewportSize({ width: 1280, height: 800 });
  };

  await ctx.step('the admin signs in', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
  });

  await ctx.step('the orders list shows the order with its film, buyer and amount', async () => {
    await page.goto(`${baseUrl}/admin/orders`);
    const row = page.locator(`tr:has(a[href="/admin/orders/${order}"])`);
    await row.waitFor({ timeout: 10000 });
    const text = (await row.textContent()).replace(/\s+/g, ' ');
    expect(text.includes('Night <b>Train</b>'), `the row reads ${text}`);
    expect(text.includes(buyer) && text.includes('4.99 USD') && text.includes('captured'), `the row reads ${text}`);
    await ctx.shot('console-orders');
    await narrow('console-orders');
  });

  await ctx.step('filters narrow the list', async () => {
    await page.goto(`${baseUrl}/admin/orders?state=refunded`);
    expect((await page.locator(`a[href="/admin/orders/${order}"]`).count()) === 0, 'a captured order under refunded');
    await page.selectOption('#f-state', 'captured');
    await page.selectOption('#f-provider', 'dev');
    await page.selectOption('#f-film', ctx.env('FILM_ID'));
    await page.click('button:text("Show")');
    await page.locator(`a[href="/admin/orders/${order}"]`).waitFor({ timeout: 10000 });
    await page.fill('#f-from', '2000-01-01');
    await page.fill('#f-to', '2000-01-02');
    await page.click('button:text("Show")');
    await page.waitForSelector('text=No order matches.');
  });

  await ctx.step('reconcile reports what it did', async () => {
    await page.goto(`${baseUrl}/admin/orders`);
    await page.click('button:text("Reconcile now")');
    const box = page.locator('#reconcile-result.notice');
    await box.waitFor({ timeout: 10000 });
    const text = await box.textContent();
    expect(/Reconciliation done: \d+ orders? changed/.test(text), `reconcile says ${text}`);
  });

  await ctx.step('the refund shows refunded', async () => {
    await page.goto(`${baseUrl}/admin/orders/${order}`);
    await page.waitForSelector('#order');
    const history = await page.locator('#order table').textContent();
    expect(history.includes('captured'), `history ${history}`);
    await ctx.shot('console-order-detail');
    await narrow('console-order-detail');
    await page.click('button:text("Refund")');
    await page.waitForSelector('#order .notice');
    const msg = dialogs.at(-1) || '';
    expect(msg.includes('Night <b>Train</b>') && msg.includes(buyer) && msg.includes('4.99 USD'),
      `the confirmation says ${msg}`);
    const notice = await page.textContent('#order .notice');
    expect(notice.includes('refunded'), `after the refund: ${notice}`);
    expect((await page.locator('#order button:text("Refund")').count()) === 0, 'still refundable');
    const h = await page.locator('#order table').textContent();
    expect(h.includes('refunded by admin'), `history after ${h}`);
    await ctx.shot('console-order-refunded');
  });

  await ctx.step('search finds the buyer', async () => {
    await page.goto(`${baseUrl}/admin/users`);
    await ctx.shot('console-users');
    await narrow('console-users');
    await page.fill('#q', buyer.split('@')[0].toUpperCase());
    await page.click('button:text("Search")');
    const link = page.locator(`td a:text("${buyer}")`);
    await link.waitFor({ timeout: 10000 });
    expect((await page.locator('tbody tr').count()) === 1, 'the search found more than the buyer');
    await link.click();
    await page.waitForSelector('#account');
    const orderRow = (await page.locator(`#orders-h ~ table tr:has(a[href="/admin/orders/${order}"])`).textContent())
      .replace(/\s+/g, ' ');
    expect(orderRow.includes('Night <b>Train</b>') && orderRow.includes('refunded'), `the buyer's order reads ${orderRow}`);
    const watched = (await page.locator('#films-h ~ table tbody tr').first().textContent()).replace(/\s+/g, ' ');
    expect(watched.includes('Night <b>Train</b>') && /[1-9]\d*%/.test(watched), `the buyer's progress reads ${watched}`);
    await ctx.shot('console-user-detail');
    await narrow('console-user-detail');
  });

  await ctx.step('disable then enable', async () => {
    await page.click('#account button:text("Disable")');
    await page.waitForSelector('#account .notice:has-text("is disabled")');
    expect(dialogs.at(-1).includes(buyer), `the confirmation says ${dialogs.at(-1)}`);
    await page.click('#account button:text("Enable")');
    await page.waitForSelector('#account .notice:has-text("is enabled")');
  });

  await ctx.step('give a film then revoke it', async () => {
    await page.selectOption('#grant-film', ctx.env('GIVE_FILM_ID'));
    await page.click('#grants button:text("Give")');
    await page.waitForSelector('#grants .notice:has-text("can now watch")');
    const li = page.locator('#grants li:has-text("A film to give")');
    await li.waitFor({ timeout: 10000 });
    await ctx.shot('console-user-granted');
    await li.locator('button').click();
    await page.waitForSelector('#grants .notice:has-text("is revoked")');
    expect((await page.locator('#grants li').count()) === 0, 'the grant is still listed');
  });

  await ctx.step('a sign-in link is shown once', async () => {
    await page.click('button:text("Make a sign-in link")');
    const input = page.locator('#link-url');
    await input.waitFor({ timeout: 10000 });
    const url = await input.inputValue();
    expect(/\/sign-in\?token=[A-Za-z0-9_-]{20,}/.test(url), `the link is ${url}`);
    await ctx.shot('console-user-link');
  });

  await ctx.step('an admin cannot demote or disable themself', async () => {
    await page.goto(`${baseUrl}/admin/users?q=orders-admin`);
    await page.click('td a');
    await page.waitForSelector('#account');
    expect(await page.locator('#account button:text("Disable")').isDisabled(), 'own Disable is enabled');
    // The button is off; the server refuses too.
    const res = await page.evaluate(async () => {
      const r = await fetch(location.pathname + '/disabled', {
        method: 'POST',
        headers: { 'X-Requested-With': 'cinegate', 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'disabled=true',
      });
      return { status: r.status, text: await r.text() };
    });
    expect(res.status === 409 && res.text.includes('cannot disable your own account'), `self-disable: ${res.status}`);
  });

  ctx.assertNoErrors([/status of 409/]);
});
