// A fake of APNs's provider API (Apple: "Sending notification requests to APNs") over
// HTTP/2 cleartext (h2c with prior knowledge) on loopback; node's `http2`, no packages.
//
// Start: node apns_fake.mjs --public-key KEY.pem --team-id T --key-id K --topic BUNDLE
//        [--exit-with-stdin]
// Prints one line: {"port": control port (HTTP/1.1), "apns_port": the h2c port}.
//
// POST /3/device/{token}: checks the provider token (authorization: bearer JWT; header
// alg ES256 and kid; claims iss = team id and iat within the last hour and not in the
// future; signature verified with the public key) and the headers (apns-topic,
// apns-push-type alert, apns-priority 5|10, apns-expiration digits) and the payload
// (aps.alert.title and body). A failed check answers 403 InvalidProviderToken (token) or
// 400 with Apple's reason (headers, payload). Then, per the behaviour:
//   unregistered: [tokens]  → 410 {"reason":"Unregistered","timestamp":ms}
//   bad_tokens:   [tokens]  → 400 {"reason":"BadDeviceToken"}
//   fail: {token: [429|503|403, ...]} → consumed one per request: 429 TooManyRequests,
//         503 ServiceUnavailable (both with retry-after: behaviour.retry_after, default 1),
//         403 ExpiredProviderToken
// else 200 with an apns-id header.
// /_control/state: {"requests": [{token, status, reason, problems, jwt_header, jwt_claims,
// headers, payload, protocol}], "provider_tokens": distinct bearer tokens seen}.

import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { args, checkJwt, controlServer, exitWithStdin, listen, nowSecs, publicKey, scripted } from './common.mjs';

const opts = args();
const key = publicKey(opts['public-key']);
const defaults = () => ({ unregistered: [], bad_tokens: [], fail: {}, retry_after: 1 });
let behaviour = defaults();
let requests = [];
let tokens = new Set();

function check(headers, payloadText) {
  const problems = [];
  const auth = headers.authorization || '';
  const bearer = auth.startsWith('bearer ') ? auth.slice(7) : null;
  let jwt = { header: null, claims: null, problems: ['no bearer provider token'] };
  if (bearer) {
    tokens.add(bearer);
    jwt = checkJwt(bearer, 'ES256', key);
    const { header, claims } = jwt;
    if (header && header.kid !== opts['key-id']) jwt.problems.push(`kid ${header.kid}`);
    if (claims) {
      if (claims.iss !== opts['team-id']) jwt.problems.push(`iss ${claims.iss}`);
      const age = nowSecs() - claims.iat;
      if (!Number.isInteger(claims.iat) || age > 3600 || age < -60) jwt.problems.push(`iat ${claims.iat}`);
      const extra = Object.keys(claims).filter((k) => k !== 'iss' && k !== 'iat');
      if (extra.length) jwt.problems.push(`unexpected claims ${extra}`);
    }
  }
  if (headers['apns-topic'] !== opts.topic) problems.push(`apns-topic ${headers['apns-topic']}`);
  if (headers['apns-push-type'] !== 'alert') problems.push(`apns-push-type ${headers['apns-push-type']}`);
  if (!['5', '10'].includes(headers['apns-priority'])) problems.push(`apns-priority ${headers['apns-priority']}`);
  if (!/^\d+$/.test(headers['apns-expiration'] || '')) problems.push(`apns-expiration ${headers['apns-expiration']}`);
  let payload = null;
  try {
    payload = JSON.parse(payloadText);
    const alert = payload.aps && payload.aps.alert;
    if (!alert || typeof alert.title !== 'string' || typeof alert.body !== 'string') problems.push('aps.alert.title/body missing');
  } catch {
    problems.push('payload is not JSON');
  }
  return { jwt, problems, payload };
}

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    const path = headers[':path'] || '';
    const m = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(path);
    const token = m ? m[1] : null;
    const { jwt, problems, payload } = check(headers, Buffer.concat(chunks).toString());
    let status = 200;
    let reason = null;
    let extraHeaders = {};
    if (headers[':method'] !== 'POST' || !token) { status = 404; reason = 'BadPath'; }
    else if (jwt.problems.length) { status = 403; reason = 'InvalidProviderToken'; }
    else if (problems.length) { status = 400; reason = problems[0].startsWith('apns-topic') ? 'BadTopic' : 'BadRequest'; }
    else if (behaviour.unregistered.includes(token)) { status = 410; reason = 'Unregistered'; }
    else if (behaviour.bad_tokens.includes(token)) { status = 400; reason = 'BadDeviceToken'; }
    else {
      const s = scripted(behaviour, token);
      if (s === 429) { status = 429; reason = 'TooManyRequests'; }
      else if (s === 503) { status = 503; reason = 'ServiceUnavailable'; }
      else if (s === 403) { status = 403; reason = 'ExpiredProviderToken'; }
      if (s === 429 || s === 503) extraHeaders['retry-after'] = String(behaviour.retry_after);
    }
    const seen = {};
    for (const h of ['apns-topic', 'apns-push-type', 'apns-priority', 'apns-expiration', 'content-type']) seen[h] = headers[h];
    requests.push({
      token, status, reason, problems: [...jwt.problems, ...problems],
      jwt_header: jwt.header, jwt_claims: jwt.claims, headers: seen, payload,
      protocol: `HTTP/${stream.session.alpnProtocol === 'h2c' ? '2 (h2c)' : stream.session.alpnProtocol}`,
    });
    const out = { ':status': status, 'apns-id': randomUUID(), ...extraHeaders };
    if (status === 200) { stream.respond(out); stream.end(); return; }
    const body = { reason };
    if (status === 410) body.timestamp = Date.now();
    stream.respond({ ...out, 'content-type': 'application/json' });
    stream.end(JSON.stringify(body));
  });
});

const control = controlServer({
  state: () => ({ requests, provider_tokens: [...tokens] }),
  behaviour,
  reset: () => { requests = []; tokens = new Set(); Object.assign(behaviour, defaults()); },
});

const apnsPort = await listen(server);
const port = await listen(control);
process.stdout.write(`${JSON.stringify({ port, apns_port: apnsPort })}\n`);
exitWithStdin(opts);
