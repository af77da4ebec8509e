// What the push fakes (apns_fake.mjs, fcm_fake.mjs) share: argument parsing, JWT checks
// with node's own crypto (no npm packages: the judge of our JWTs shares no code with the
// Rust side), a JSON control server on HTTP/1.1 (/_control/state, /_control/behaviour,
// /_control/reset), and --exit-with-stdin.

import { createServer } from 'node:http';
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

export function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--exit-with-stdin') out.exitWithStdin = true;
    else if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[++i];
  }
  return out;
}

export function publicKey(path) {
  return createPublicKey(readFileSync(path));
}

const b64url = (s) => Buffer.from(s, 'base64url');

// Checks a compact JWS: alg, signature (ES256 as r||s, RS256 as PKCS#1 v1.5). Returns
// {header, claims, problems}; every problem is a string the test can print.
export function checkJwt(token, alg, key) {
  const problems = [];
  const parts = (token || '').split('.');
  if (parts.length !== 3) return { header: null, claims: null, problems: ['not a compact JWS'] };
  let header = null;
  let claims = null;
  try {
    header = JSON.parse(b64url(parts[0]).toString());
    claims = JSON.parse(b64url(parts[1]).toString());
  } catch (e) {
    return { header, claims, problems: [`undecodable: ${e.message}`] };
  }
  if (header.alg !== alg) problems.push(`alg ${header.alg}, expected ${alg}`);
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = b64url(parts[2]);
  const ok = alg === 'ES256'
    ? verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
    : verify('sha256', data, key, sig);
  if (!ok) problems.push('signature does not verify with the public key');
  return { header, claims, problems };
}

export const nowSecs = () => Math.floor(Date.now() / 1000);

export function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

export function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

// A control server: state() → JSON, behaviour merged from POST /_control/behaviour,
// reset() on POST /_control/reset. `extra(path, body)` answers other control paths.
export function controlServer({ state, behaviour, reset, extra }) {
  return createServer(async (req, res) => {
    const body = req.method === 'POST' ? await readBody(req) : '';
    let v = {};
    try { v = body ? JSON.parse(body) : {}; } catch { return sendJson(res, 400, { error: 'not JSON' }); }
    if (req.url === '/_control/state') return sendJson(res, 200, state());
    if (req.url === '/_control/behaviour') {
      Object.assign(behaviour, v);
      return sendJson(res, 200, behaviour);
    }
    if (req.url === '/_control/reset') { reset(); return sendJson(res, 200, {}); }
    const answer = extra ? extra(req.url, v) : undefined;
    if (answer !== undefined) return sendJson(res, 200, answer);
    sendJson(res, 404, { error: `no control ${req.url}` });
  });
}

export function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

export function exitWithStdin(opts) {
  if (opts.exitWithStdin) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
}

// Takes the next scripted status for `token` from behaviour.fail[token] (a list consumed
// one per request), or null.
export function scripted(behaviour, token) {
  const queue = behaviour.fail && behaviour.fail[token];
  if (Array.isArray(queue) && queue.length > 0) return queue.shift();
  return null;
}
