// A fake of FCM HTTP v1 and Google's OAuth token endpoint on loopback (HTTP/1.1); node's
// own crypto, no packages.
//
// Start: node fcm_fake.mjs --public-key SA_PUBLIC.pem --client-email E --project-id P
//        [--exit-with-stdin]
// Prints one line: {"port": N} (API, token endpoint and /_control on the same port).
//
// POST /token (the service account's token_uri = http://127.0.0.1:N/token): form
//   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT; the assertion
//   must be RS256, verify with the public key, and claim iss = client email, scope =
//   https://www.googleapis.com/auth/firebase.messaging, aud = the token_uri, iat near now,
//   exp = iat + at most 3600. Else 400 invalid_grant. Answers
//   {"access_token", "expires_in": behaviour.expires_in (3600), "token_type": "Bearer"}.
// POST /v1/projects/P/messages:send with `authorization: Bearer <issued, unrevoked token>`
//   (else 401 UNAUTHENTICATED) and {"message": {"token", "notification": {"title","body"},
//   "data": {string: string}}} (else 400 INVALID_ARGUMENT on the field). Per behaviour:
//   unregistered: [tokens] → 404 NOT_FOUND, errorCode UNREGISTERED
//   invalid: [tokens]      → 400 INVALID_ARGUMENT, fieldViolations message.token
//   fail: {token: [429|503, ...]} consumed one per request → 429 QUOTA_EXCEEDED /
//         503 UNAVAILABLE, with retry-after: behaviour.retry_after (1)
//   else 200 {"name": "projects/P/messages/N"}.
// POST /_control/revoke: every token issued so far is refused from now on.
// /_control/state: {"token_calls", "token_problems": [...], "sends": [{token, status,
//   bearer, message, problems}], "assertions": [{header, claims}]}.

import { createServer } from 'node:http';
import { args, checkJwt, controlServer, exitWithStdin, listen, nowSecs, publicKey, readBody, scripted, sendJson } from './common.mjs';

const opts = args();
const key = publicKey(opts['public-key']);
const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const defaults = () => ({ unregistered: [], invalid: [], fail: {}, retry_after: 1, expires_in: 3600 });
let behaviour = defaults();
let state;
const fresh = () => ({ token_calls: 0, token_problems: [], sends: [], assertions: [] });
state = fresh();
let issued = new Map(); // access token → expiry (ms)
let counter = 0;
let port = 0;

function fcmError(res, code, status, errorCode, extra = {}, headers = {}) {
  const details = [];
  if (errorCode) details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode });
  if (extra.field) {
    details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: extra.field, description: extra.description || 'invalid' }] });
  }
  sendJson(res, code, { error: { code, message: extra.message || status, status, details } }, headers);
}

async function token(req, res) {
  state.token_calls += 1;
  const form = new URLSearchParams(await readBody(req));
  const problems = [];
  if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') problems.push(`grant_type ${form.get('grant_type')}`);
  const jwt = checkJwt(form.get('assertion'), 'RS256', key);
  problems.push(...jwt.problems);
  const c = jwt.claims;
  if (c) {
    if (c.iss !== opts['client-email']) problems.push(`iss ${c.iss}`);
    if (c.scope !== SCOPE) problems.push(`scope ${c.scope}`);
    if (c.aud !== `http://127.0.0.1:${port}/token`) problems.push(`aud ${c.aud}`);
    if (!Number.isInteger(c.iat) || Math.abs(nowSecs() - c.iat) > 300) problems.push(`iat ${c.iat}`);
    if (!Number.isInteger(c.exp) || c.exp <= c.iat || c.exp - c.iat > 3600) problems.push(`exp ${c.exp}`);
  }
  state.assertions.push({ header: jwt.header, claims: c });
  if (problems.length) {
    state.token_problems.push(...problems);
    return sendJson(res, 400, { error: 'invalid_grant', error_description: problems.join('; ') });
  }
  counter += 1;
  const access = `ya29.fake-${counter}`;
  issued.set(access, Date.now() + behaviour.expires_in * 1000);
  sendJson(res, 200, { access_token: access, expires_in: behaviour.expires_in, token_type: 'Bearer' });
}

async function send(req, res) {
  const auth = req.headers.authorization || '';
  const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : null;
  const text = await readBody(req);
  const rec = { token: null, status: 0, bearer, message: null, problems: [] };
  state.sends.push(rec);
  const expiry = bearer && issued.get(bearer);
  if (!expiry || expiry < Date.now()) {
    rec.status = 401;
    rec.problems.push('bearer not issued, revoked or expired');
    return fcmError(res, 401, 'UNAUTHENTICATED', 'THIRD_PARTY_AUTH_ERROR');
  }
  let m = null;
  try { m = JSON.parse(text).message; } catch { /* checked below */ }
  rec.message = m;
  const n = m && m.notification;
  if (!m || typeof m.token !== 'string') rec.problems.push('message.token');
  if (!n || typeof n.title !== 'string' || typeof n.body !== 'string') rec.problems.push('message.notification');
  if (m && m.data && Object.values(m.data).some((v) => typeof v !== 'string')) rec.problems.push('message.data');
  if (rec.problems.length) {
    rec.status = 400;
    return fcmError(res, 400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', { field: rec.problems[0] === 'message.token' ? 'message.token' : rec.problems[0] });
  }
  rec.token = m.token;
  const retry = { 'retry-after': String(behaviour.retry_after) };
  if (behaviour.unregistered.includes(m.token)) {
    rec.status = 404;
    return fcmError(res, 404, 'NOT_FOUND', 'UNREGISTERED', { message: 'Requested entity was not found.' });
  }
  if (behaviour.invalid.includes(m.token)) {
    rec.status = 400;
    return fcmError(res, 400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', { field: 'message.token', message: 'The registration token is not a valid FCM registration token' });
  }
  const s = scripted(behaviour, m.token);
  if (s === 429) { rec.status = 429; return fcmError(res, 429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', {}, retry); }
  if (s === 503) { rec.status = 503; return fcmError(res, 503, 'UNAVAILABLE', 'UNAVAILABLE', {}, retry); }
  rec.status = 200;
  sendJson(res, 200, { name: `projects/${opts['project-id']}/messages/${state.sends.length}` });
}

const control = controlServer({
  state: () => state,
  behaviour,
  reset: () => { state = fresh(); Object.assign(behaviour, defaults()); },
  extra: (path) => {
    if (path === '/_control/revoke') { issued = new Map(); return {}; }
    return undefined;
  },
});

const server = createServer((req, res) => {
  if (req.url.startsWith('/_control/')) return control.emit('request', req, res);
  if (req.method === 'POST' && req.url === '/token') return token(req, res);
  if (req.method === 'POST' && req.url === `/v1/projects/${opts['project-id']}/messages:send`) return send(req, res);
  sendJson(res, 404, { error: { code: 404, status: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
});

port = await listen(server);
process.stdout.write(`${JSON.stringify({ port })}\n`);
exitWithStdin(opts);
