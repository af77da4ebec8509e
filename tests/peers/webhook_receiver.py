"""An operator's webhook receiver with its own verifier of cinegate's signature, written
from docs/WEBHOOKS.md alone (Python's hmac; nothing shared with the server).

Start: python3 webhook_receiver.py --secret S [--exit-with-stdin]
Prints one line: {"port": N}. POST / (any path but /_control/*) is a delivery:
  - the signature is checked: `Cinegate-Signature: t=<unix>,v1=<hex>` where hex =
    HMAC-SHA256(secret, "<t>.<raw body>"), compared in constant time, and t within
    TOLERANCE seconds of now; a bad signature answers 400;
  - the first `fail_first` deliveries that verify (behaviour; default 0) answer
    `fail_status` (503) with Retry-After: `retry_after` (1); later ones 200.
/_control/state: {"deliveries": [{"path", "event", "delivery", "signature", "verified",
  "problem", "status", "body"}]}; /_control/behaviour merges {"fail_first",
  "fail_status", "retry_after"}; /_control/reset forgets deliveries and behaviour.
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300
DEFAULTS = {"fail_first": 0, "fail_status": 503, "retry_after": 1}


def verify(secret: bytes, header: str, body: bytes, now: float):
    """None when the signature is good, else why not."""
    fields = {}
    for part in (header or "").split(","):
        k, _, v = part.strip().partition("=")
        fields.setdefault(k, []).append(v)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError):
        return "no t="
    if abs(now - t) > TOLERANCE:
        return f"t={t} is outside the {TOLERANCE} s tolerance"
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, v) for v in fields.get("v1", [])):
        return "no v1= matches"
    return None


class State:
    def __init__(self, secret):
        self.secret = secret
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.deliveries = []
        self.behaviour = dict(DEFAULTS)
        self.failed = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.server.state
        if self.path == "/_control/state":
            with st.lock:
                return self.answer(200, {"deliveries": st.deliveries, "behaviour": st.behaviour})
        self.answer(404, {})

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_control/behaviour":
            with st.lock:
                st.behaviour.update(json.loads(body or b"{}"))
                return self.answer(200, st.behaviour)
        if self.path == "/_control/reset":
            with st.lock:
                st.reset()
            return self.answer(200, {})
        problem = verify(st.secret, self.headers.get("Cinegate-Signature"), body, time.time())
        if self.headers.get("Content-Type") != "application/json":
            problem = problem or f"content-type {self.headers.get('Content-Type')}"
        with st.lock:
            if problem:
                status = 400
            elif st.failed < st.behaviour["fail_first"]:
                st.failed += 1
                status = st.behaviour["fail_status"]
            else:
                status = 200
            st.deliveries.append({
                "path": self.path,
                "event": self.headers.get("Cinegate-Event"),
                "delivery": self.headers.get("Cinegate-Delivery"),
                "signature": self.headers.get("Cinegate-Signature"),
                "verified": problem is None,
                "problem": problem,
                "status": status,
                "body": body.decode(errors="replace"),
            })
            retry = str(st.behaviour["retry_after"])
        if status == 200:
            self.answer(200, {"ok": True})
        else:
            self.answer(status, {"error": problem or "try again"}, [("Retry-After", retry)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secret", required=True)
    ap.add_argument("--exit-with-stdin", action="store_true")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args.secret.encode())
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    if args.exit_with_stdin:
        def watch():
            sys.stdin.buffer.read()
            server.shutdown()
        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
