// The console's film pages (issue 15): an admin creates a film through the form (its
// title is markup, which must stay text), uploads a 20 s film through the page with
// tus-js-client in small chunks, reloads mid-upload and resumes from the server's offset,
// watches packaging reach 100%, publishes, and plays the whole film in the console's
// player; a file that is not a film shows the server's 422 reason; the list finds the
// film by title and state; a second film is deleted after a confirmation naming it.
// Env: BASE_URL, ADMIN_TOKEN (login-link token), FILM_PATH (the 20 s film), FILM_BYTES,
// JUNK_PATH (random bytes named x.mp4), BIG_PATH (a file over upload.max_bytes).
import { run } from './lib.mjs';

const TITLE = '<script>window.__xss=1</script> Night & "Day"';
const CHUNK = 256 * 1024;
// Chromium logs each 4xx answer as a console error; these are the point of the test.
const EXPECTED = [/status of 4(22|13)/, /Response Status Error Code 4(22|13)/];

run(async (ctx) => {
  const { page, baseUrl, expect } = ctx;
  const filmBytes = Number(ctx.env('FILM_BYTES'));
  let filmUrl = '';

  await ctx.step('the admin signs in', async () => {
    await page.goto(`${baseUrl}/admin/sign-in?token=${ctx.env('ADMIN_TOKEN')}`);
    await page.waitForURL((u) => u.pathname === '/admin', { timeout: 10000 });
  });

  await ctx.step('the new-film form refuses a bad price with its code, in the page', async () => {
    await page.goto(`${baseUrl}/admin/films/new`);
    await page.fill('#title', TITLE);
    await page.fill('#description', 'A <b>test</b> film & more');
    await page.fill('#price-amount-1', '12.345');
    await page.fill('#price-currency-1', 'USD');
    await page.click('#film-form button[type=submit]');
    const err = page.locator('#form-error');
    await err.waitFor({ timeout: 10000 });
    const text = await err.textContent();
    expect(text.includes('invalid_input') && text.includes('12.345'), `the refusal reads "${text}"`);
    // What was typed is still there.
    expect(await page.inputValue('#title') === TITLE, 'the title was kept');
    await ctx.shot('console-film-new');
  });

  await ctx.step('a film is created through the form; its markup title renders as text', async () => {
    await page.fill('#price-amount-1', '12.00');
    await page.fill('#price-amount-2', '15000');
    await page.fill('#price-currency-2', 'krw');
    await page.click('#film-form button[type=submit]');
    await page.waitForURL((u) => /^\/admin\/films\/[0-9a-f-]{36}$/.test(u.pathname), { timeout: 10000 });
    filmUrl = page.url();
    const h1 = await page.locator('#film-title').textContent();
    expect(h1 === TITLE, `the heading reads "${h1}"`);
    expect(await page.evaluate(() => window.__xss) === undefined, 'the title ran as a script');
    expect(await page.inputValue('#price-amount-1') === '12.00', 'USD price shown back in major units');
    expect(await page.inputValue('#price-currency-2') === 'KRW', 'KRW price');
    expect(await page.locator('#film-state').textContent() === 'draft', 'a new film is a draft');
  });

  // Every PATCH the page sends: its offset and size, and the creations.
  const patches = [];
  let creations = 0;
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/admin/uploads' && r.method() === 'POST') creations += 1;
    if (u.pathname.startsWith('/admin/uploads/') && r.method() === 'PATCH') {
      patches.push({ offset: Number(r.headers()['upload-offset']), bytes: (r.postDataBuffer() || Buffer.alloc(0)).length });
    }
  });
  // Each chunk takes a while, so the reload lands mid-upload.
  await page.route('**/admin/uploads/**', async (route) => {
    if (route.request().method() === 'PATCH') await new Promise((r) => setTimeout(r, 250));
    await route.continue();
  });
  const headOffset = () => page.evaluate(async () => {
    const keys = Object.keys(localStorage).filter((k) => k.startsWith('tus::'));
    if (!keys.length) return null;
    const { uploadUrl } = JSON.parse(localStorage.getItem(keys[0]));
    const r = await fetch(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
    return { status: r.status, offset: Number(r.headers.get('Upload-Offset')), url: uploadUrl };
  });
  const startUpload = async (file) => {
    await page.evaluate((c) => { document.getElementById('upload').dataset.chunkSize = String(c); }, CHUNK);
    await page.setInputFiles('#upload-file', file);
    await page.click('#upload-start');
  };

  let before = null;
  await ctx.step('the upload shows bytes, speed and ETA; the page is reloaded mid-upload', async () => {
    await startUpload(ctx.env('FILM_PATH'));
    await page.waitForFunction((n) => Number(document.getElementById('upload').dataset.offset || 0) > n / 4,
      filmBytes, { timeout: 30000 });
    const status = await page.locator('#upload-status').textContent();
    expect(/ of .* · .*\/s · .* left/.test(status), `the upload status reads "${status}"`);
    await ctx.shot('console-film-uploading');
    before = await headOffset();
    expect(before && before.status === 200 && before.offset > 0, `HEAD before the reload: ${JSON.stringify(before)}`);
    await page.reload();
    const hint = page.locator('#upload-resumable');
    await hint.waitFor({ state: 'visible', timeout: 10000 });
  });

  await ctx.step('choosing the same file resumes from the server offset, not from 0', async () => {
    const at = patches.length;
    const still = await headOffset();
    expect(still && still.url === before.url && still.offset >= before.offset,
      `the upload after the reload: ${JSON.stringify(still)} (before: ${JSON.stringify(before)})`);
    await startUpload(ctx.env('FILM_PATH'));
    await page.locator('#upload-status:text("Uploaded")').waitFor({ timeout: 60000 });
    const after = patches.slice(at);
    expect(after.length > 0, 'no PATCH after the reload');
    expect(after[0].offset >= before.offset && after[0].offset > 0,
      `the first PATCH after the reload started at ${after[0].offset} (the server had ${before.offset})`);
    expect(after.every((p) => p.offset > 0), `a PATCH went back to 0: ${JSON.stringify(after)}`);
    const sent = patches.reduce((s, p) => s + p.bytes, 0);
    expect(sent < 2 * filmBytes, `${sent} bytes sent for a ${filmBytes}-byte file`);
    expect(creations === 1, `${creations} uploads were created`);
    console.log(`resumed at ${after[0].offset} of ${filmBytes}; ${sent} bytes sent in ${patches.length} PATCHes`);
  });

  await ctx.step('packaging progress is live and reaches 100%', async () => {
    await page.unroute('**/admin/uploads/**');
    await page.locator('#packaging[hx-trigger]').waitFor({ timeout: 10000 });
    await ctx.shot('console-film-packaging');
    // The poll that finds the job finished reloads the page.
    await page.locator('#job-state:text("succeeded")').waitFor({ timeout: 90000 });
    const pct = await page.locator('#job-percent').textContent();
    expect(pct === '100%', `packaging ended at ${pct}`);
    expect(await page.locator('#film-state').textContent() === 'ready', 'packaged, not published');
  });

  await ctx.step('the admin publishes and the whole film plays in the console player', async () => {
    await page.click('#publish');
    await page.locator('#film-state:text("published")').waitFor({ timeout: 10000 });
    await page.waitForSelector('#player');
    await page.evaluate(() => { const v = document.getElementById('player'); v.muted = true; return v.play(); });
    await page.waitForFunction(() => {
      const v = document.getElementById('player');
      return v.currentTime > 2 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    }, null, { timeout: 30000 });
    await ctx.shot('console-film-playing');
    // Chromium has Media Source Extensions: the player must be hls.js (the encrypted HLS
    // is decrypted and transmuxed by it, not by the browser).
    const engine = await page.evaluate(() => (window.consolePlayer ? 'hls.js' : 'native'));
    expect(engine === 'hls.js', `the preview played through ${engine}, not hls.js`);
    console.log(`played ${await page.evaluate(() => document.getElementById('player').currentTime)} s with ${engine}`);
  });

  await ctx.step('a file that is not a film shows the server\'s 422 reason', async () => {
    await page.goto(filmUrl);
    const answers = [];
    page.on('response', (r) => { if (r.url().includes('/admin/uploads/')) answers.push(r.status()); });
    await startUpload(ctx.env('JUNK_PATH'));
    const err = page.locator('#upload-error');
    await err.waitFor({ state: 'visible', timeout: 30000 });
    const text = await err.textContent();
    expect(answers.includes(422), `the upload answers were ${answers}`);
    expect(text.includes('code:') && text.length > 20, `the refusal reads "${text}"`);
    expect(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length) === 0,
      'the refused upload is still remembered');
    await ctx.shot('console-film-refused');
    console.log(`refusal: ${text.replace(/\s+/g, ' ').trim()}`);
  });

  await ctx.step('a file over the limit shows the server\'s 413 limit', async () => {
    await page.goto(filmUrl);
    await startUpload(ctx.env('BIG_PATH'));
    const err = page.locator('#upload-error');
    await err.waitFor({ state: 'visible', timeout: 30000 });
    const text = await err.textContent();
    expect(text.includes('upload_too_large') && /limit/.test(text), `the refusal reads "${text}"`);
    console.log(`limit: ${text.replace(/\s+/g, ' ').trim()}`);
  });

  await ctx.step('the list shows the film with its poster, state and prices; search and state filter', async () => {
    await page.goto(`${baseUrl}/admin/films`);
    const row = page.locator('table.films tbody tr', { hasText: 'Night & "Day"' });
    await row.waitFor({ timeout: 10000 });
    const text = (await row.textContent()).replace(/\s+/g, ' ');
    expect(text.includes('published') && text.includes('12.00 USD') && text.includes('15000 KRW') && text.includes('0:20'),
      `the row reads "${text}"`);
    await page.waitForFunction(() => [...document.querySelectorAll('table.films img')].some((i) => i.complete && i.naturalWidth > 0),
      null, { timeout: 10000 });
    expect(await page.evaluate(() => window.__xss) === undefined, 'the title ran as a script in the list');
    await ctx.shot('console-films');
    await page.goto(`${baseUrl}/admin/films?q=${encodeURIComponent('night &')}&state=published`);
    expect(await page.locator('table.films tbody tr').count() === 1, 'search by title and state');
    await page.goto(`${baseUrl}/admin/films?q=nothing-like-this`);
    expect(await page.locator('table.films').count() === 0, 'a search matching nothing');
    await page.setViewportSize({ width: 360, height: 740 });
    for (const u of ['/admin/films', filmUrl.replace(baseUrl, ''), '/admin/films/new']) {
      await page.goto(`${baseUrl}${u}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 0, `${u} is ${overflow} px wider than a 360 px screen`);
    }
    await ctx.shot('console-film-360');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await ctx.step('deleting asks, naming the film, and goes back to the list', async () => {
    await page.goto(`${baseUrl}/admin/films/new`);
    await page.fill('#title', 'Throwaway');
    await page.click('#film-form button[type=submit]');
    await page.waitForURL((u) => /^\/admin\/films\/[0-9a-f-]{36}$/.test(u.pathname), { timeout: 10000 });
    let asked = '';
    page.once('dialog', (d) => { asked = d.message(); d.accept(); });
    await page.click('#delete');
    await page.waitForURL((u) => u.pathname === '/admin/films', { timeout: 10000 });
    expect(asked.includes('«Throwaway»'), `the confirmation read "${asked}"`);
    expect(await page.locator('table.films tbody tr', { hasText: 'Throwaway' }).count() === 0, 'the film is still listed');
  });

  ctx.assertNoErrors(EXPECTED);
});
