// The viewer app's catalogue, film page, sign-in and languages (issue 16, first part).
// Env: BASE_URL, FILM_ID, FILM_TITLE (markup in it), VIEWER_TOKEN (a login-link token).
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const film = ctx.env('FILM_ID');
  const title = ctx.env('FILM_TITLE');

  await ctx.step('the catalogue lists the film with its poster, duration and price', async () => {
    const res = await page.goto(`${baseUrl}/`);
    expect(res.status() === 200, `/ answered ${res.status()}`);
    const csp = res.headers()['content-security-policy'] || '';
    expect(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
    const card = page.locator(`.card a[href="/films/${film}"]`);
    await card.waitFor();
    expect((await card.locator('.title').textContent()) === title, 'the title prints as text');
    expect((await page.evaluate(() => window.__xss)) === undefined, 'a script in the title ran');
    const meta = await page.locator('.card .meta').first().textContent();
    expect(meta.includes('4.99 USD') && meta.includes('0:12'), `card meta: ${meta}`);
    const poster = await page.evaluate(() => {
      const img = document.querySelector('.card img');
      return img.complete && img.naturalWidth > 0;
    });
    expect(poster, 'the poster did not load');
    await ctx.shot('viewer-catalogue');
  });

  await ctx.step('a signed-out viewer who presses play is asked to sign in, then comes back', async () => {
    await page.goto(`${baseUrl}/films/${film}`);
    await page.click('#play');
    await page.waitForURL((u) => u.pathname === '/sign-in');
    expect(new URL(page.url()).searchParams.get('next') === `/films/${film}`, `next: ${page.url()}`);
    await ctx.shot('viewer-signin');
    await page.fill('#token', ctx.env('VIEWER_TOKEN'));
    await page.click('#link-form button[type=submit]');
    await page.waitForURL((u) => u.pathname === `/films/${film}`, { timeout: 10000 });
    expect((await page.locator('#play').getAttribute('href')) === `/films/${film}/watch`, 'the play button is not for a signed-in viewer');
    await ctx.shot('viewer-film');
  });

  await ctx.step('the film page shows the public counts', async () => {
    const s = await page.locator('#supporters').textContent();
    const c = await page.locator('#comment-count').textContent();
    expect(/^0 /.test(s) && /^0 /.test(c), `counts: ${s} / ${c}`);
  });

  await ctx.step('the language switch gives the Korean UI and back', async () => {
    await page.click('a.lang');
    await page.waitForSelector('html[lang=ko]');
    expect((await page.locator('#play').textContent()).includes('재생'), 'the play button is not in Korean');
    await ctx.shot('viewer-film-ko');
    await page.click('a.lang');
    await page.waitForSelector('html[lang=en]');
  });

  await ctx.step('the app is installable: manifest, icons, a service worker', async () => {
    const manifest = await page.evaluate(async () => (await fetch('/manifest.webmanifest')).json());
    expect(manifest.start_url === '/' && manifest.icons.length >= 2, 'manifest');
    const registered = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return !!reg.active;
    });
    expect(registered, 'no active service worker');
  });

  await ctx.step('the page reads at 390 px', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${baseUrl}/films/${film}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `${overflow} px wider than the phone`);
    await ctx.shot('viewer-film-phone');
  });

  ctx.assertNoErrors();
});
