// Test peer: an OpenID Connect provider for cinegate's Google/Apple sign-in tests.
//
// npm `oauth2-mock-server` (pinned in package.json) does the OIDC work: discovery,
// /authorize (302 straight back, no login page), /token (authorization code + PKCE + nonce),
// /userinfo. This script puts a thin front in front of its request handler for:
//   - POST /_control/claims  {claim: value, ...}  merged into every later id_token
//                            (a null value deletes the claim); {} resets
//   - POST /_control/mint    {claims, expires_in, kid, alg_none, hs256_with_public_key}
//                            -> {"id_token": "..."}
//   - POST /_control/fail    {"mode": "none" | "500" | "timeout"} for /token and /jwks
//   - POST /_control/apple   {public_key_pem, team_id, client_id, key_id} makes /token check
//                            an Apple-style ES256 client_secret; {} turns the check off
//   - POST /_control/client  {client_id, client_secret} makes /token check a confidential
//                            client's credentials (form fields or HTTP Basic) and answer a
//                            mismatch like Google: 401 invalid_client; {} turns it off
//   - GET  /_control/requests -> {"token_calls": N, "jwks_calls": M}
// /jwks is served here too: the signing key "rs1" (RS256) plus "es1" (ES256). "es1" is kept
// OUT of the library's key store, which hands keys out round-robin: with one key there,
// every issued access/id token is signed by rs1.
//
// Start: `node server.mjs [--exit-with-stdin]`. Listens on 127.0.0.1, port 0, and prints one
// line: {"port":N,"issuer":"http://127.0.0.1:N"}. With --exit-with-stdin it exits when its
// stdin closes (so a killed test run leaves no stray peer).

import { createServer } from 'node:http';
import { createHmac, createPublicKey } from 'node:crypto';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';
import { SignJWT, exportJWK, generateKeyPair, importJWK, importSPKI, jwtVerify } from 'jose';

const APPLE_AUD = 'https://appleid.apple.com';
const APPLE_MAX_SECRET_LIFETIME = 15777000; // six months, Apple's limit for client_secret
const HOLD_MS = 60_000;

// --- keys -------------------------------------------------------------------------------

const issuer = new OAuth2Issuer();
const rs1 = await issuer.keys.generate('RS256', { kid: 'rs1' }); // private JWK, the only key in the store
const rs1Private = await importJWK(rs1, 'RS256');
const rs1PublicJwk = issuer.keys.toJSON()[0];
const rs1PublicPem = createPublicKey({ key: rs1PublicJwk, format: 'jwk' })
  .export({ type: 'spki', format: 'pem' });

const es1 = await generateKeyPair('ES256', { extractable: true });
const es1PublicJwk = { ...(await exportJWK(es1.publicKey)), kid: 'es1', alg: 'ES256' };

// A key nobody publishes, for tokens whose kid is not in /jwks (made on first use).
let rogue = null;

const service = new OAuth2Service(issuer);
const inner = service.requestHandler;

// --- state ------------------------------------------------------------------------------

let idTokenClaims = {};
let failMode = 'none';
let apple = null; // { key, team_id, client_id, key_id }
let client = null; // { client_id, client_secret }
let tokenCalls = 0;
let jwksCalls = 0;

function applyClaims(payload, claims) {
  for (const [k, v] of Object.entries(claims)) {
    if (v === null) delete payload[k];
    else payload[k] = v;
  }
}

// The library fires this twice per /token call: access token (has `scope`), then id_token.
service.on('beforeTokenSigning', (token) => {
  if (!('scope' in token.payload)) applyClaims(token.payload, idTokenClaims);
});

// --- helpers ----------------------------------------------------------------------------

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function readJson(req) {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  const v = JSON.parse(text);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('body must be a JSON object');
  return v;
}

const b64url = (data) => Buffer.from(data).toString('base64url');

/** Applies the failure mode; true when the request has been dealt with. */
function injectFailure(req, res) {
  if (failMode === '500') {
    sendJson(res, 500, { error: 'server_error', error_description: 'injected failure (test peer)' });
    return true;
  }
  if (failMode === 'timeout') {
    req.resume();
    const t = setTimeout(() => req.socket.destroy(), HOLD_MS);
    req.socket.on('close', () => clearTimeout(t));
    return true;
  }
  return false;
}

// --- control ----------------------------------------------------------------------------

async function mint(body) {
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = body.expires_in ?? 600;
  const payload = { iss: issuer.url, sub: 'johndoe', iat: now, exp: now + expiresIn };
  applyClaims(payload, body.claims ?? {});
  const kid = body.kid ?? 'rs1';

  if (body.alg_none) {
    return `${b64url(JSON.stringify({ alg: 'none' }))}.${b64url(JSON.stringify(payload))}.`;
  }
  if (body.hs256_with_public_key) {
    // Key confusion: HMAC keyed with rs1's public key (SPKI PEM text, as exported).
    const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(payload))}`;
    return `${input}.${createHmac('sha256', rs1PublicPem).update(input).digest('base64url')}`;
  }
  let alg = 'RS256';
  let key = rs1Private;
  if (kid === 'es1') {
    alg = 'ES256';
    key = es1.privateKey;
  } else if (kid !== 'rs1') {
    rogue ??= await generateKeyPair('RS256');
    key = rogue.privateKey; // any other kid: a valid RS256 signature by an unpublished key
  }
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', kid }).sign(key);
}

async function control(req, res, path) {
  const post = req.method === 'POST';
  if (path === '/_control/requests' && req.method === 'GET') {
    return sendJson(res, 200, { token_calls: tokenCalls, jwks_calls: jwksCalls });
  }
  if (!post) return sendJson(res, 404, { error: `no such control endpoint: ${req.method} ${path}` });
  const body = await readJson(req);
  switch (path) {
    case '/_control/claims':
      idTokenClaims = body;
      return sendJson(res, 200, { claims: idTokenClaims });
    case '/_control/mint':
      return sendJson(res, 200, { id_token: await mint(body) });
    case '/_control/fail': {
      const mode = body.mode ?? 'none';
      if (!['none', '500', 'timeout'].includes(mode)) throw new Error(`unknown mode ${mode}`);
      failMode = mode;
      return sendJson(res, 200, { mode });
    }
    case '/_control/client':
      if (Object.keys(body).length === 0) {
        client = null;
      } else {
        for (const f of ['client_id', 'client_secret']) {
          if (typeof body[f] !== 'string') throw new Error(`client: ${f} must be a string`);
        }
        client = { client_id: body.client_id, client_secret: body.client_secret };
      }
      return sendJson(res, 200, { client: client !== null });
    case '/_control/apple':
      if (Object.keys(body).length === 0) {
        apple = null;
      } else {
        for (const f of ['public_key_pem', 'team_id', 'client_id', 'key_id']) {
          if (typeof body[f] !== 'string') throw new Error(`apple: ${f} must be a string`);
        }
        apple = { ...body, key: await importSPKI(body.public_key_pem, 'ES256') };
      }
      return sendJson(res, 200, { apple: apple !== null });
    default:
      return sendJson(res, 404, { error: `no such control endpoint: ${path}` });
  }
}

// --- Apple client_secret ----------------------------------------------------------------

/** Why an Apple client_secret is rejected, or null when it is fine. */
async function appleSecretProblem(form) {
  if (form.client_id !== apple.client_id) return `client_id ${form.client_id} is not ${apple.client_id}`;
  if (typeof form.client_secret !== 'string') return 'no client_secret';
  try {
    const { payload, protectedHeader } = await jwtVerify(form.client_secret, apple.key, {
      algorithms: ['ES256'],
      issuer: apple.team_id,
      subject: apple.client_id,
      audience: APPLE_AUD,
      requiredClaims: ['iat', 'exp'],
    });
    if (protectedHeader.kid !== apple.key_id) return `kid ${protectedHeader.kid} is not ${apple.key_id}`;
    if (payload.exp > Math.floor(Date.now() / 1000) + APPLE_MAX_SECRET_LIFETIME) return 'exp too far ahead';
    return null;
  } catch (e) {
    return `client_secret: ${e.code ?? ''} ${e.message}`;
  }
}

// --- confidential client --------------------------------------------------------------

/** Why a client's credentials (HTTP Basic, else form fields) are refused, or null. */
function clientProblem(req, form) {
  let id = form.client_id;
  let secret = form.client_secret;
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const text = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = text.indexOf(':');
    id = decodeURIComponent(text.slice(0, i));
    secret = decodeURIComponent(text.slice(i + 1));
  }
  if (id !== client.client_id) return `client_id ${id} is not ${client.client_id}`;
  if (secret !== client.client_secret) return `client_secret for ${id} does not match`;
  return null;
}

// --- front ------------------------------------------------------------------------------

async function handle(req, res) {
  const path = new URL(req.url, 'http://127.0.0.1').pathname.replace(/(.)\/+$/, '$1');
  if (path.startsWith('/_control/')) return control(req, res, path);

  if (path === '/jwks') {
    jwksCalls += 1;
    if (injectFailure(req, res)) return;
    return sendJson(res, 200, { keys: [{ ...rs1PublicJwk, use: 'sig' }, { ...es1PublicJwk, use: 'sig' }] });
  }

  if (path === '/token') {
    tokenCalls += 1;
    if (injectFailure(req, res)) return;
    if ((apple || client) && req.method === 'POST') {
      // Read the form here; the library's body parser then sees a finished request and
      // keeps req.body as set.
      const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
      if (apple) {
        const problem = await appleSecretProblem(form);
        if (problem) {
          process.stderr.write(`oidc peer: apple invalid_client: ${problem}\n`);
          return sendJson(res, 400, { error: 'invalid_client' });
        }
      }
      if (client) {
        const problem = clientProblem(req, form);
        if (problem) {
          process.stderr.write(`oidc peer: invalid_client: ${problem}\n`);
          // Google's words, with the detail a real provider gives (and a viewer must not see).
          return sendJson(res, 401, {
            error: 'invalid_client',
            error_description: `The OAuth client was not found or its secret is wrong: ${problem}`,
          });
        }
      }
      req.body = form;
    }
  }
  inner(req, res);
}

const server = createServer((req, res) => {
  handle(req, res).catch((e) => {
    if (!res.headersSent) sendJson(res, 400, { error: String(e.message ?? e) });
    else res.destroy();
  });
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
issuer.url = `http://127.0.0.1:${port}`;
process.stdout.write(`${JSON.stringify({ port, issuer: issuer.url })}\n`);

if (process.argv.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
