// Self-test of the Chromium peer and of web/assets/vendor/: a tiny local server (no
// cinegate) answers every page with the strict CSP the admin console uses, and the page
// loads the vendored htmx, hls.js, tus-js-client and chart.js. Checks each global, that
// each library does its job under that CSP (an htmx swap, hls.js playing a short H.264/AAC
// HLS stream made by the ffmpeg CLI through its blob: worker and MediaSource, a tus upload,
// a drawn chart) and that no CSP violation or error was reported; then that the collector
// does see the violation htmx causes without its CSP config. Env: none (SHOTS_DIR,
// BROWSER_TIMEOUT_MS as in lib.mjs). Needs ffmpeg on PATH.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run, expect, repoRoot } from './lib.mjs';

export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; " +
  "base-uri 'none'; form-action 'self'";

const vendorDir = path.join(repoRoot, 'web/assets/vendor');
const HTMX_CONFIG =
  `<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>`;

function page(withConfig) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>vendor smoke</title>
${withConfig ? HTMX_CONFIG : ''}
<script src="/vendor/htmx.min.js"></script>
<script src="/vendor/hls.min.js"></script>
<script src="/vendor/tus.min.js"></script>
<script src="/vendor/chart.umd.min.js"></script>
</head><body>
<h1>vendored libraries under a strict CSP</h1>
<button id="load" hx-get="/fragment" hx-target="#target" hx-swap="innerHTML">load</button>
<div id="target">before</div>
<video id="video" muted playsinline width="320" height="240"></video>
<div><canvas id="chart" width="400" height="200"></canvas></div>
</body></html>`;
}

function hlsStream(dir) {
  // Baseline H.264 + AAC in MPEG-TS segments: what hls.js transmuxes in its worker.
  execFileSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440',
    '-t', '4', '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-g', '50',
    '-c:a', 'aac', '-f', 'hls', '-hls_time', '2', '-hls_playlist_type', 'vod',
    '-hls_segment_filename', path.join(dir, 'seg%d.ts'), path.join(dir, 'out.m3u8'),
  ]);
}

function serve(hlsDir) {
  const uploads = new Map();
  const types = { '.js': 'text/javascript', '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t' };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, headers, body) => {
      res.writeHead(status, { 'Content-Security-Policy': CONSOLE_CSP, ...headers });
      res.end(body);
    };
    const file = (dir, name) => {
      const p = path.join(dir, path.basename(name));
      if (!existsSync(p)) return send(404, {}, 'not found');
      send(200, { 'Content-Type': types[path.extname(p)] || 'application/octet-stream' }, readFileSync(p));
    };
    if (url.pathname === '/') return send(200, { 'Content-Type': 'text/html' }, page(true));
    if (url.pathname === '/no-config') return send(200, { 'Content-Type': 'text/html' }, page(false));
    if (url.pathname === '/fragment') return send(200, { 'Content-Type': 'text/html' }, '<p id="swapped">swapped</p>');
    if (url.pathname === '/favicon.ico') return send(204, {}, '');
    if (url.pathname.startsWith('/vendor/')) return file(vendorDir, url.pathname);
    if (url.pathname.startsWith('/hls/')) return file(hlsDir, url.pathname);
    // Just enough of tus 1.0.0 (creation + PATCH) for tus-js-client's upload.
    if (url.pathname === '/files/' && req.method === 'POST') {
      const id = String(uploads.size + 1);
      uploads.set(id, { length: Number(req.headers['upload-length']), offset: 0 });
      return send(201, { 'Tus-Resumable': '1.0.0', Location: `/files/${id}` }, '');
    }
    const m = url.pathname.match(/^\/files\/(\d+)$/);
    if (m && uploads.has(m[1])) {
      const up = uploads.get(m[1]);
      if (req.method === 'HEAD') {
        return send(200, { 'Tus-Resumable': '1.0.0', 'Upload-Offset': up.offset, 'Upload-Length': up.length }, '');
      }
      if (req.method === 'PATCH') {
        let n = 0;
        req.on('data', (c) => (n += c.length));
        req.on('end', () => {
          up.offset += n;
          send(204, { 'Tus-Resumable': '1.0.0', 'Upload-Offset': up.offset }, '');
        });
        return;
      }
    }
    send(404, {}, 'not found');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

run(async (ctx) => {
  const hlsDir = mkdtempSync(path.join(tmpdir(), 'cinegate-smoke-hls-'));
  let server;
  try {
    hlsStream(hlsDir);
    server = await serve(hlsDir);
    const base = `http://127.0.0.1:${server.address().port}`;
    const { page } = ctx;

    await ctx.step('vendored libraries load under the console CSP', async () => {
      const res = await page.goto(`${base}/`);
      expect(res.headers()['content-security-policy'] === CONSOLE_CSP, 'the page lacks the CSP header');
      const globals = await page.evaluate(() => ({
        htmx: typeof window.htmx?.ajax,
        Hls: typeof window.Hls,
        tus: typeof window.tus?.Upload,
        Chart: typeof window.Chart,
        hlsSupported: window.Hls?.isSupported?.() === true,
        tusSupported: window.tus?.isSupported === true,
        htmxVersion: window.htmx?.version,
        hlsVersion: window.Hls?.version,
        chartVersion: window.Chart?.version,
      }));
      expect(globals.htmx === 'function', `htmx is missing: ${JSON.stringify(globals)}`);
      expect(globals.Hls === 'function', `Hls is missing: ${JSON.stringify(globals)}`);
      expect(globals.tus === 'function', `tus is missing: ${JSON.stringify(globals)}`);
      expect(globals.Chart === 'function', `Chart is missing: ${JSON.stringify(globals)}`);
      expect(globals.hlsSupported, 'Hls.isSupported() is false');
      expect(globals.tusSupported, 'tus.isSupported is false');
      expect(globals.htmxVersion === '2.0.11', `htmx.version ${globals.htmxVersion}`);
      expect(globals.hlsVersion === '1.7.4', `Hls.version ${globals.hlsVersion}`);
      expect(globals.chartVersion === '4.6.1', `Chart.version ${globals.chartVersion}`);
    });

    await ctx.step('htmx swaps a fragment', async () => {
      await page.click('#load');
      await page.waitForSelector('#swapped', { timeout: 10000 });
    });

    await ctx.step('hls.js plays an HLS stream (blob: worker and MediaSource)', async () => {
      const r = await page.evaluate(
        () =>
          new Promise((resolve) => {
            const video = document.getElementById('video');
            const hls = new window.Hls({ enableWorker: true });
            const fail = (why) => resolve({ ok: false, why });
            hls.on(window.Hls.Events.ERROR, (_, d) => d.fatal && fail(`${d.type} ${d.details}`));
            hls.loadSource('/hls/out.m3u8');
            hls.attachMedia(video);
            hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => fail(String(e))));
            video.addEventListener('timeupdate', () => {
              if (video.currentTime > 1) {
                resolve({ ok: true, src: video.src, worker: !!hls.config.enableWorker, t: video.currentTime });
              }
            });
            setTimeout(() => fail(`currentTime stayed ${video.currentTime}`), 20000);
          }),
      );
      expect(r.ok, `hls.js did not play: ${r.why}`);
      expect(r.src.startsWith('blob:'), `the video source is not a MediaSource blob: URL: ${r.src}`);
    });

    await ctx.step('tus-js-client uploads', async () => {
      const r = await page.evaluate(
        () =>
          new Promise((resolve) => {
            const blob = new Blob([new Uint8Array(100000).fill(7)]);
            const up = new window.tus.Upload(blob, {
              endpoint: '/files/',
              chunkSize: 40000,
              retryDelays: [],
              onError: (e) => resolve({ ok: false, why: String(e) }),
              onSuccess: () => resolve({ ok: true, url: up.url }),
            });
            up.start();
          }),
      );
      expect(r.ok, `the tus upload failed: ${r.why}`);
    });

    await ctx.step('chart.js draws', async () => {
      // Responsive (the default): chart.js sizes the canvas through element.style.
      const painted = await page.evaluate(async () => {
        const canvas = document.getElementById('chart');
        // eslint-disable-next-line no-new
        new window.Chart(canvas, {
          type: 'bar',
          data: { labels: ['a', 'b', 'c'], datasets: [{ label: 'views', data: [3, 5, 2] }] },
          options: { animation: false },
        });
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) n += 1;
        return n;
      });
      expect(painted > 1000, `the chart painted only ${painted} pixels`);
    });

    await ctx.step('no CSP violation or error was reported', async () => {
      await ctx.shot('smoke-vendor');
      ctx.assertNoErrors();
    });

    await ctx.step('without htmx-config, htmx\'s inline <style> is reported as a CSP violation', async () => {
      await page.goto(`${base}/no-config`);
      await page.waitForFunction(() => typeof window.htmx === 'object');
      await page.waitForTimeout(200);
      const csp = ctx.pendingErrors().filter((e) => /Content Security Policy/i.test(e));
      expect(csp.some((e) => /style/i.test(e)), `no style violation was collected: ${JSON.stringify(ctx.errors)}`);
      ctx.clearErrors();
    });
  } finally {
    server?.close();
    rmSync(hlsDir, { recursive: true, force: true });
  }
});
