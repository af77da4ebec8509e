// The console's analytics page (issue 17): the charts draw under the CSP (chart.js from
// /assets/vendor, data from `data-chart` attributes), the totals and the funnel table show
// the figures the JSON API reports, the retention curve of the film has one row per
// segment, the CSV exports download, a range the form cannot make is refused in words,
// and the page fits a 360 px screen. Screenshots of the page, the film's page and at 360 px.
// Env: BASE_URL, ADMIN_TOKEN, FILM_ID, FUNNEL (JSON: the API's funnel), SEGMENTS (count),
// VIEWERS (the film's viewers).
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const film = ctx.env('FILM_ID');
  const funnel = JSON.parse(ctx.env('FUNNEL'));
  const segments = Number(ctx.env('SEGMENTS'));

  await ctx.step('the admin signs in and opens Analytics from the navigation', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
    await page.click('nav a:text("Analytics")');
    await page.waitForURL((u) => u.pathname === '/admin/analytics', { timeout: 10000 });
  });

  await ctx.step('every chart is drawn', async () => {
    await page.waitForSelector('#revenue-chart[data-drawn="true"]', { timeout: 10000 });
    await page.waitForSelector('#funnel-chart[data-drawn="true"]', { timeout: 10000 });
    // No film chosen: the most watched film's curve.
    await page.waitForSelector('#retention-chart[data-drawn="true"]', { timeout: 10000 });
    const painted = await page.evaluate(() => {
      const c = document.querySelector('#funnel-chart');
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
      return ink;
    });
    expect(painted > 500, `the funnel chart painted ${painted} pixels`);
    await ctx.shot('console-analytics');
  });

  await ctx.step('the funnel table reads as the API reports', async () => {
    const rows = await page.$$eval('#funnel-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    const want = [
      ['Viewers', funnel.viewers], ['Preview completions', funnel.preview_completions],
      ['Checkouts', funnel.checkouts], ['Purchases', funnel.purchases], ['Completions', funnel.completions],
    ];
    for (const [i, [label, n]] of want.entries()) {
      expect(rows[i] && rows[i][0] === label && rows[i][1] === String(n), `funnel row ${i}: ${JSON.stringify(rows[i])}, want ${label} ${n}`);
    }
    const figures = Object.fromEntries(await page.$$eval('.figures > div', (ds) => ds.map((d) => [
      d.querySelector('dt').textContent.trim(), d.querySelector('dd').textContent.trim()])));
    expect(figures['Viewers'] === '3' && figures['Revenue (net of refunds)'] === '4.99 USD'
      && figures['Refunds'] === '1' && figures['Completion (90%)'] === '33.3%', `totals read ${JSON.stringify(figures)}`);
  });

  await ctx.step('one film: its retention curve and the CSV exports', async () => {
    await page.selectOption('#a-film', film);
    await page.selectOption('#a-g', 'week');
    await page.click('button:text("Show")');
    await page.waitForURL((u) => u.searchParams.get('film') === film, { timeout: 10000 });
    await page.waitForSelector('#retention-chart[data-drawn="true"]', { timeout: 10000 });
    const rows = await page.$$eval('#retention-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    expect(rows.length === segments, `${rows.length} retention rows for ${segments} segments`);
    expect(rows[0][2] === ctx.env('VIEWERS') && rows[0][3] === '100.0%', `segment 0 reads ${JSON.stringify(rows[0])}`);
    await ctx.shot('console-analytics-film');
    for (const link of ['a:text("CSV") >> nth=0', '#ret-h ~ p a:text("CSV")']) {
      const href = await page.getAttribute(link, 'href');
      const res = await page.request.get(`${baseUrl}${href}`);
      expect(res.status() === 200, `${href}: ${res.status()}`);
      expect((res.headers()['content-type'] || '').startsWith('text/csv'), `${href}: ${res.headers()['content-type']}`);
      const first = (await res.text()).split('\r\n')[0];
      expect(first.startsWith('start,') || first === 'segment,viewers,share', `${href} starts ${first}`);
    }
  });

  await ctx.step('a range the form cannot make is refused in words', async () => {
    const res = await page.goto(`${baseUrl}/admin/analytics?from=2026-03-02&to=2026-03-01`);
    expect(res.status() === 422, `status ${res.status()}`);
    const text = await page.textContent('.error');
    expect(text.includes('is after') && text.includes('invalid_range'), `the error reads ${text}`);
  });

  await ctx.step('the page fits a 360 px screen', async () => {
    await page.goto(`${baseUrl}/admin/analytics`);
    await page.waitForSelector('#funnel-chart[data-drawn="true"]', { timeout: 10000 });
    await page.setViewportSize({ width: 360, height: 740 });
    // chart.js follows its box's size from a ResizeObserver: give it a frame to.
    await page.waitForTimeout(300);
    const { overflow, wide } = await page.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      wide: [...document.querySelectorAll('main *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
    }));
    expect(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen: ${wide.join(', ')}`);
    await ctx.shot('console-analytics-360');
  });

  // The refused range's own 422 is the one error the browser may report.
  ctx.assertNoErrors([/from=2026-03-02&to=2026-03-01: Failed to load resource: the server responded with a status of 422/]);
});
