#!/usr/bin/env python3
"""Test peer: a fake of Facebook Login + Graph API (v19.0 contract) for cinegate's tests.

No published package fakes /me + /debug_token, so this is our own,
written from Facebook's published contract ("Manually Build a Login Flow", "Securing
Requests", /debug_token reference, Graph API error handling). Python 3.11 stdlib only.

    python3 facebook_graph.py --app-id ID --app-secret S [--exit-with-stdin]

Binds 127.0.0.1:0 and prints one line {"port": N}. Paths may carry a /vNN.N prefix.

  GET  /dialog/oauth          302 to redirect_uri?code=..&state=.. for the current user
  GET|POST /oauth/access_token  code -> {"access_token","token_type":"bearer","expires_in"}
  GET  /me?fields=id,name,email&access_token=..&appsecret_proof=..
  GET  /debug_token?input_token=..&access_token=APPID|SECRET
Control (JSON in/out):
  POST /_control/user   {"id","name","email"?} or {"deny": true}: the user every later
                        /dialog/oauth logs in (sticky until changed)
  POST /_control/token  {"access_token","app_id","user":{..},"valid":true,"expires_at":unix}
                        registers a token (expires_at 0 = never expires)
  POST /_control/fail   {"mode":"none"|"500"|"timeout"} for /oauth/access_token, /me,
                        /debug_token
Errors are HTTP 400 {"error":{"message","type":"OAuthException","code",["error_subcode"],
"fbtrace_id"}}.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fakehttp

TOKEN_LIFETIME = 5183944  # what Facebook answers for a long-lived user token (about 60 days)
CODE_LIFETIME = 600
HOLD_SECONDS = 60
USER_FIELDS = ("id", "name", "email")
SCOPES = ["email", "public_profile"]


class State:
    def __init__(self, app_id, app_secret):
        self.app_id = app_id
        self.app_secret = app_secret
        self.lock = threading.Lock()
        self.user = {"id": "10000000000001", "name": "Test User", "email": "test.user@example.com"}
        self.deny = False
        self.codes = {}  # code -> {user, redirect_uri, challenge, method, expires, used}
        self.tokens = {}  # access_token -> {app_id, user, valid, expires_at, issued_at}
        self.fail = "none"


STATE: State


class GraphError(Exception):
    def __init__(self, code, message, subcode=None, status=400, etype="OAuthException"):
        super().__init__(message)
        self.body = {"message": message, "type": etype, "code": code}
        if subcode is not None:
            self.body["error_subcode"] = subcode
        self.body["fbtrace_id"] = secrets.token_urlsafe(8)
        self.status = status


def pkce_ok(verifier, challenge, method):
    if not verifier:
        return False
    if method == "plain":
        return hmac.compare_digest(verifier, challenge)
    digest = hashlib.sha256(verifier.encode()).digest()
    return hmac.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), challenge)


def token_problem(tok, now):
    """None when `tok` (a registered token record) is usable, else a GraphError."""
    if not tok["valid"]:
        return GraphError(
            190,
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons.",
            subcode=460,
        )
    if tok["expires_at"] and tok["expires_at"] <= now:
        when = time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(tok["expires_at"]))
        return GraphError(190, f"Error validating access token: Session has expired on {when}.", subcode=463)
    return None


class Handler(fakehttp.Handler):
    server_version = "FakeGraph/1.0"
    json_type = "application/json; charset=UTF-8"
    json_ascii = True

    def json_headers(self, body):
        return (("Cache-Control", "no-store"),)

    def route_path(self, path):
        return re.sub(r"^/v\d+\.\d+(?=/)", "", path).rstrip("/") or "/"

    def params(self, query):
        """Query string, plus a form body on POST (the body wins)."""
        p = dict(parse_qsl(query, keep_blank_values=True))
        if self.command == "POST":
            body = self.body
            ctype = self.headers.get("Content-Type", "")
            if body and "json" in ctype:
                p.update({k: str(v) for k, v in json.loads(body).items()})
            elif body:
                p.update(fakehttp.form_fields(body, errors="strict"))
        return p

    def api(self, path, url):
        routes = {
            "/dialog/oauth": self.dialog,
            "/oauth/access_token": self.access_token,
            "/me": self.me,
            "/debug_token": self.debug_token,
        }
        handler = routes.get(path)
        if handler is None:
            raise GraphError(2500, f"Unknown path components: {path}")
        if path != "/dialog/oauth" and self.inject_failure():
            return
        p = self.params(url.query)
        handler(p)

    def error_answer(self, e):
        if isinstance(e, GraphError):
            return e.status, {"error": e.body}
        if isinstance(e, (ValueError, KeyError, TypeError)):
            return 400, {"error": {"message": f"bad request: {e}", "type": "GraphMethodException",
                                   "code": 100, "fbtrace_id": secrets.token_urlsafe(8)}}
        return None

    def inject_failure(self):
        mode = STATE.fail
        if mode == "500":
            self.send_json(500, {"error": {
                "message": "An unexpected error has occurred. Please retry your request later.",
                "type": "OAuthException", "is_transient": True, "code": 2,
                "fbtrace_id": secrets.token_urlsafe(8)}})
            return True
        if mode == "timeout":
            self.hold_and_drop(HOLD_SECONDS)
            return True
        return False

    # -- login dialog ---------------------------------------------------------------------

    def dialog(self, p):
        if p.get("client_id") != STATE.app_id:
            raise GraphError(101, "Error validating application. Invalid application ID.")
        redirect_uri = p.get("redirect_uri")
        if not redirect_uri:
            raise GraphError(100, "The parameter redirect_uri is required")
        method = p.get("code_challenge_method") or "plain"
        challenge = p.get("code_challenge")
        if challenge and method not in ("S256", "plain"):
            raise GraphError(100, "Invalid code_challenge_method")
        if p.get("response_type", "code") != "code":
            raise GraphError(100, "this fake supports response_type=code only")
        with STATE.lock:
            if STATE.deny:
                extra = {"error": "access_denied", "error_code": "200",
                         "error_description": "Permissions error", "error_reason": "user_denied"}
            else:
                code = "AQ" + secrets.token_urlsafe(48)
                STATE.codes[code] = {
                    "user": dict(STATE.user), "redirect_uri": redirect_uri, "challenge": challenge,
                    "method": method, "expires": time.time() + CODE_LIFETIME, "used": False,
                }
                extra = {"code": code}
        if "state" in p:
            extra["state"] = p["state"]
        parts = urlsplit(redirect_uri)
        query = parts.query + ("&" if parts.query else "") + urlencode(extra)
        # (Real Facebook also appends a "#_=_" fragment, which browsers never send; omitted.)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- code exchange ----------------------------------------------------------------------

    def access_token(self, p):
        if p.get("client_id") != STATE.app_id:
            raise GraphError(101, "Error validating application. Invalid application ID.")
        if not hmac.compare_digest(p.get("client_secret", ""), STATE.app_secret):
            raise GraphError(1, "Error validating client secret.")
        code = p.get("code")
        if not code:
            raise GraphError(100, "Missing authorization code")
        with STATE.lock:
            rec = STATE.codes.get(code)
            if rec is None:
                raise GraphError(100, "Invalid verification code format.")
            if rec["used"]:
                raise GraphError(100, "This authorization code has been used.", subcode=36009)
            if rec["expires"] < time.time():
                raise GraphError(100, "This authorization code has expired.", subcode=36007)
            if p.get("redirect_uri") != rec["redirect_uri"]:
                raise GraphError(
                    100,
                    "Error validating verification code. Please make sure your redirect_uri is "
                    "identical to the one you used in the OAuth dialog request",
                    subcode=36008,
                )
            if rec["challenge"] and not pkce_ok(p.get("code_verifier"), rec["challenge"], rec["method"]):
                raise GraphError(100, "Invalid code verifier.")
            rec["used"] = True
            token = "EAA" + secrets.token_urlsafe(64)
            now = int(time.time())
            STATE.tokens[token] = {"app_id": STATE.app_id, "user": rec["user"], "valid": True,
                                   "expires_at": now + TOKEN_LIFETIME, "issued_at": now}
        self.send_json(200, {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME})

    # -- /me ------------------------------------------------------------------------------

    def me(self, p):
        token = p.get("access_token")
        auth = self.headers.get("Authorization", "")
        if not token and auth.split(" ", 1)[0].lower() in ("bearer", "oauth"):
            token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        if not token:
            raise GraphError(2500, "An active access token must be used to query information about the current user.")
        with STATE.lock:
            tok = STATE.tokens.get(token)
        if tok is None:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        proof = p.get("appsecret_proof")
        if not proof:
            raise GraphError(100, "API calls from the server require an appsecret_proof argument")
        # The proof is checked with the secret of the app the token belongs to; we know only
        # our own secret, so another app's token never passes (as with the real Graph API).
        expected = hmac.new(STATE.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if tok["app_id"] != STATE.app_id or not hmac.compare_digest(proof.lower(), expected):
            raise GraphError(100, "Invalid appsecret_proof provided in the API argument")
        problem = token_problem(tok, int(time.time()))
        if problem:
            raise problem
        fields = [f.strip() for f in (p.get("fields") or "id,name").split(",") if f.strip()]
        for f in fields:
            if f not in USER_FIELDS:
                raise GraphError(100, f"(#100) Tried accessing nonexisting field ({f}) on node type (User)")
        user = tok["user"]
        self.send_json(200, {f: user[f] for f in fields if user.get(f) is not None})

    # -- /debug_token -----------------------------------------------------------------------

    def debug_token(self, p):
        if "input_token" not in p:
            raise GraphError(100, "(#100) The parameter input_token is required")
        app_token = p.get("access_token", "")
        if not hmac.compare_digest(app_token, f"{STATE.app_id}|{STATE.app_secret}"):
            raise GraphError(190, "Invalid OAuth access token signature.")
        now = int(time.time())
        with STATE.lock:
            tok = STATE.tokens.get(p["input_token"])
        if tok is None:
            data = {"is_valid": False, "error": {"code": 190, "message": "Invalid OAuth access token."},
                    "scopes": []}
            return self.send_json(200, {"data": data})
        data = {
            "app_id": tok["app_id"],
            "type": "USER",
            "application": f"App {tok['app_id']}",
            "data_access_expires_at": now + 90 * 86400,
            "expires_at": tok["expires_at"],
            "is_valid": True,
            "issued_at": tok["issued_at"],
            "scopes": list(SCOPES),
            "user_id": tok["user"]["id"],
        }
        problem = token_problem(tok, now)
        if problem:
            data["is_valid"] = False
            data["scopes"] = []
            err = problem.body
            data["error"] = {"code": err["code"], "message": err["message"], "subcode": err.get("error_subcode")}
        self.send_json(200, {"data": data})

    # -- control ----------------------------------------------------------------------------

    def control(self, path):
        if self.command != "POST":
            return self.send_json(405, {"error": "control endpoints take POST"})
        body = self.control_json()
        if body is None:
            return None
        with STATE.lock:
            if path == "/_control/user":
                if body.get("deny"):
                    STATE.deny = True
                else:
                    if not isinstance(body.get("id"), str) or not isinstance(body.get("name"), str):
                        return self.send_json(400, {"error": "user needs string id and name"})
                    STATE.deny = False
                    STATE.user = {k: body[k] for k in USER_FIELDS if body.get(k) is not None}
                return self.send_json(200, {"user": STATE.user, "deny": STATE.deny})
            if path == "/_control/token":
                user = body.get("user") or {}
                if not isinstance(body.get("access_token"), str) or not isinstance(user.get("id"), str):
                    return self.send_json(400, {"error": "token needs access_token and user.id"})
                now = int(time.time())
                STATE.tokens[body["access_token"]] = {
                    "app_id": str(body.get("app_id", STATE.app_id)),
                    "user": {k: user[k] for k in USER_FIELDS if user.get(k) is not None},
                    "valid": bool(body.get("valid", True)),
                    "expires_at": int(body.get("expires_at", now + TOKEN_LIFETIME)),
                    "issued_at": now,
                }
                return self.send_json(200, {"registered": body["access_token"]})
            if path == "/_control/fail":
                mode = body.get("mode", "none")
                if mode not in ("none", "500", "timeout"):
                    return self.send_json(400, {"error": f"unknown mode {mode}"})
                STATE.fail = mode
                return self.send_json(200, {"mode": mode})
        self.send_json(404, {"error": f"no such control endpoint: {path}"})


def main():
    global STATE
    args = fakehttp.arguments(__doc__, "--app-id", "--app-secret")
    STATE = State(args.app_id, args.app_secret)
    fakehttp.serve(Handler, STATE, args)


if __name__ == "__main__":
    main()
