// The viewer app's player with the packages on a bucket behind a CDN (issue 20): a buyer
// plays past the preview boundary with hls.js while every request is recorded. Segments
// come from the CDN (a cross-origin fetch: the CDN's CORS headers and the page's CSP
// must both allow it), playlists and keys from the origin, and nothing is refused or
// fails. Desktop, then a phone (390 x 844) reopening the film where it was left.
// Env: BASE_URL, FILM_ID, CDN_BASE_URL (the CDN's origin, no trailing '/'), BOUNDARY
// (the preview boundary in seconds), PLAY_TO (seconds the desktop plays to), VIEWER_TOKEN
// (a login-link token of a viewer who bought the film).
// Prints one `summary:` line the Rust test reads.
import { run } from './lib.mjs';

run(async (ctx) => {
  const { page, context, baseUrl, expect } = ctx;
  const film = ctx.env('FILM_ID');
  const cdn = new URL(ctx.env('CDN_BASE_URL')).origin;
  const origin = new URL(baseUrl).origin;
  const boundary = Number(ctx.env('BOUNDARY'));
  const playTo = Number(ctx.env('PLAY_TO'));
  const watchPath = `/films/${film}/watch`;
  expect(cdn !== origin, `the CDN ${cdn} is the origin itself: the test would prove nothing`);

  // Every request of every page and worker, as the browser made it.
  const requests = [];
  const failed = [];
  let pending = 0;
  context.on('request', (r) => {
    pending += 1;
    requests.push({ url: new URL(r.url()), type: r.resourceType(), sw: Boolean(r.serviceWorker()) });
  });
  context.on('requestfinished', () => { pending -= 1; });
  context.on('requestfailed', (r) => {
    pending -= 1;
    failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  const corsAnswers = [];
  context.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.request().method()} ${r.url()}: HTTP ${r.status()}`);
    if (r.url().startsWith(`${cdn}/`)) corsAnswers.push(r.headers()['access-control-allow-origin'] ?? '(none)');
  });
  // CSP violations as the document reports them (the console says "Refused to ..." too,
  // which lib.mjs collects as an error): directive, blocked URL and where.
  const violations = [];
  await context.exposeFunction('__cinegateCsp', (v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cinegateCsp(`${e.violatedDirective} blocked ${e.blockedURI} on ${e.documentURI}`);
    });
  });

  const video = (fn, arg) => page.evaluate(fn, arg);
  // A player that never gets going says why in what the browser saw, not in a timeout.
  const orSayWhy = async (what, wait) => {
    try {
      await wait;
    } catch (e) {
      const shown = await page.locator('#player-error').textContent().catch(() => '');
      const at = await video(() => document.getElementById('player').currentTime).catch(() => '?');
      const list = (name, xs) => (xs.length === 0 ? `${name}: none`
        : `${name} (${xs.length}, the first 3):\n    ${xs.slice(0, 3).join('\n    ')}`);
      expect(false, [
        `${what} (at ${at} s): ${e.message.split('\n')[0]}`,
        `player error: ${shown || 'none'}`,
        list('CSP violations', violations),
        list('failed requests', failed),
        list('browser errors', ctx.pendingErrors()),
      ].join('\n  '));
    }
  };
  const pressPlay = async () => {
    await page.click('#start');
    await orSayWhy('the video did not start', page.waitForFunction(
      () => window.cinegatePlayer && window.cinegatePlayer.playingAt !== null, null, { timeout: 15000 }));
  };
  const playPast = async (seconds) => {
    // Faster than real time, still decoded and shown frame by frame by the browser.
    await video(() => { document.getElementById('player').playbackRate = 4; });
    await orSayWhy(`the video did not play past ${seconds} s`, page.waitForFunction(
      (s) => document.getElementById('player').currentTime > s, seconds, { timeout: 30000 }));
    return video(() => document.getElementById('player').currentTime);
  };
  const checkPlayer = async () => {
    const d = await video(() => ({ ...document.getElementById('player').dataset }));
    expect(d.entitlement === 'full', `entitlement ${d.entitlement}: the viewer did not buy the film`);
    // The player is given the origin's master playlist, never a bucket URL.
    const src = new URL(d.src, baseUrl);
    expect(src.origin === origin, `the player's source ${src} is not on the origin`);
    const engine = await video(() => window.cinegatePlayer.engine);
    expect(engine === 'hls.js', `engine ${engine}`);
    return d;
  };
  // Stops loading only once nothing has been in flight for a second (paused, hls.js has
  // filled its buffer and asks for nothing more), so leaving the page aborts no request:
  // an aborted request would read as a failure.
  const leaveQuietly = async () => {
    await video(() => document.getElementById('player').pause());
    const until = Date.now() + 15000;
    let quietSince = Date.now();
    while (Date.now() - quietSince < 1000) {
      expect(Date.now() < until, `${pending} requests still in flight after 15 s`);
      if (pending > 0) quietSince = Date.now();
      await page.waitForTimeout(100);
    }
    await video(() => window.cinegatePlayer.hls.stopLoad());
  };

  let playedTo = 0;
  await ctx.step('desktop: the buyer plays past the preview boundary from the CDN', async () => {
    await page.goto(`${baseUrl}/sign-in?next=${encodeURIComponent(watchPath)}`);
    await page.fill('#token', ctx.env('VIEWER_TOKEN'));
    await page.click('#link-form button[type=submit]');
    await page.waitForURL((u) => u.pathname === watchPath, { timeout: 10000 });
    await checkPlayer();
    await pressPlay();
    playedTo = await playPast(playTo);
    expect(playedTo > boundary, `played to ${playedTo} s, not past the boundary ${boundary}`);
    expect(await page.locator('#paywall').isHidden(), 'the paywall showed for a buyer');
    expect(await page.locator('#player-error').isHidden(), `player error: ${await page.locator('#player-error').textContent()}`);
    const frames = await video(() => document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames);
    expect(frames > 0, 'no video frame was decoded');
    await ctx.shot('viewer-bucket-playing');
    console.log(`desktop played to ${playedTo.toFixed(1)} s, ${frames} frames decoded`);
    await leaveQuietly();
  });

  await ctx.step('phone: reopening the film at 390 x 844 resumes from the CDN', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const before = requests.length;
    await page.goto(`${baseUrl}${watchPath}`);
    const d = await checkPlayer();
    const start = Number(d.start);
    await pressPlay();
    const at = await playPast(start + 6);
    expect(await page.locator('#player-error').isHidden(), `player error: ${await page.locator('#player-error').textContent()}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `${overflow} px wider than the phone`);
    const fresh = requests.slice(before).filter((r) => r.url.pathname.endsWith('.ts'));
    expect(fresh.length > 0, 'the phone fetched no segment');
    await ctx.shot('viewer-bucket-playing-phone');
    console.log(`phone resumed at ${start} s and played to ${at.toFixed(1)} s`);
    await leaveQuietly();
  });

  await ctx.step('segments came from the CDN, playlists and keys from the origin, nothing failed', async () => {
    const page_ = requests.filter((r) => !r.sw);
    const of = (ext) => page_.filter((r) => r.url.pathname.endsWith(ext));
    const segments = of('.ts');
    const playlists = of('.m3u8');
    const keys = of('.key');
    const where = (list, o) => list.filter((r) => r.url.origin === o);
    const show = (list) => list.map((r) => r.url.href).join('\n  ');

    const offCdn = segments.filter((r) => r.url.origin !== cdn);
    expect(offCdn.length === 0, `segments not from the CDN ${cdn}:\n  ${show(offCdn)}`);
    expect(where(segments, origin).length === 0, 'the origin was asked for segments');
    // Through PLAY_TO seconds of 6 s segments, past the boundary: paid segments too.
    const indexes = segments.map((r) => Number(r.url.pathname.match(/(\d+)\.ts$/)?.[1]));
    const last = Math.max(...indexes);
    expect(last >= Math.floor(playTo / 6), `the last segment fetched is ${last}:\n  ${show(segments)}`);
    expect(last >= Math.ceil(boundary / 6), `no paid segment was fetched (last ${last})`);

    const playlistsElsewhere = playlists.filter((r) => r.url.origin !== origin);
    expect(playlists.length >= 2 && playlistsElsewhere.length === 0,
      `playlists (${playlists.length}) not all from the origin:\n  ${show(playlistsElsewhere)}`);
    const keysElsewhere = keys.filter((r) => r.url.origin !== origin);
    expect(keys.length >= 2 && keysElsewhere.length === 0,
      `keys (${keys.length}) not all from the origin:\n  ${show(keysElsewhere)}`);
    // The CDN is asked for segments and nothing else (no playlist, no key).
    const cdnOther = page_.filter((r) => r.url.origin === cdn && !r.url.pathname.endsWith('.ts'));
    expect(cdnOther.length === 0, `the CDN was asked for:\n  ${show(cdnOther)}`);

    const badCors = corsAnswers.filter((a) => a !== '*' && a !== origin);
    expect(badCors.length === 0, `CDN answers without a CORS grant for ${origin}: ${badCors.join(', ')}`);
    expect(violations.length === 0, `CSP violations:\n  ${violations.join('\n  ')}`);
    expect(failed.length === 0, `failed requests:\n  ${failed.join('\n  ')}`);
    ctx.assertNoErrors();
    console.log(
      `summary: ${segments.length} segments from the CDN (0 from the origin, last index ${last}), ` +
      `${playlists.length} playlists and ${keys.length} keys from the origin, ` +
      `${violations.length} CSP violations, ${failed.length} failed requests, played to ${playedTo.toFixed(1)} s`,
    );
  });
});
