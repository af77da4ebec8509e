"""What cinegate's loopback test peers (facebook_graph.py and the payment fakes) share:
startup, request plumbing, JSON and HTML answers, and the behaviour / state / reset control
endpoints of the payment fakes. Python 3.11 stdlib only; the peers run as
`python3 tests/peers/X.py`, so `import fakehttp` finds this file next to them.

A peer subclasses `Handler` (its `api(path, url)` answers everything but /_control/*, its
`error_answer(e)` turns an exception into an answer) and, for the payment fakes, `FakeState`;
its main() is `args = arguments(__doc__, "--opt", ...)`, then `serve(Handler, state, args)`.
"""

import argparse
import copy
import json
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# -- behaviour values --------------------------------------------------------------------------


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# The failure-injection keys every payment fake's behaviour ends with (besides its own).
FAILURE_BEHAVIOUR = {
    "fail": "none",              # "none" | "500" | "429" | "timeout", every API call
    "fail_on": None,             # null = every API call; [counter, ...] = only those calls
                                 # (named by their counter, e.g. "capture_calls")
    "fail_times": None,          # null = until changed; N = only the next N API calls
    "capture_delay": 0,          # seconds between recording a capture / approval and answering
    "hold_seconds": 60,          # how long "timeout" holds the request before dropping it
}

FAILURE_CHECKS = {
    "fail": lambda v: v in ("none", "500", "429", "timeout"),
    "fail_on": lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "fail_times": lambda v: v is None or (is_int(v) and v >= 0),
    "capture_delay": number,
    "hold_seconds": number,
}

# -- small helpers -----------------------------------------------------------------------------


def add_query(url, params):
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def public(rec):
    """A record without its private ("_"-prefixed) keys, deep-copied."""
    return {k: copy.deepcopy(v) for k, v in rec.items() if not k.startswith("_")}


def form_fields(body, errors="replace"):
    return dict(parse_qsl(body.decode(errors=errors), keep_blank_values=True))


class FakeState:
    """A payment fake's state: a lock, the behaviour (DEFAULTS merged with what the test set,
    each key validated by CHECKS) and the call counters (`counts`, set by `reset`)."""

    DEFAULTS: dict = {}
    CHECKS: dict = {}

    def __init__(self):
        self.base = ""
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.behaviour = dict(self.DEFAULTS)

    def merge_behaviour(self, changes):
        """Merges `changes` (the lock is held); None, or the error body when one is bad."""
        for k, v in changes.items():
            check = self.CHECKS.get(k)
            if check is None:
                return {"error": f"unknown behaviour key {k!r}", "keys": sorted(self.CHECKS)}
            if not check(v):
                return {"error": f"bad value for {k}: {v!r}"}
        self.behaviour.update(changes)
        return None

    def take_failure(self, counter=None):
        """None, or the ("500" | "429" | "timeout", hold seconds) this API call (counted by
        `counter`) is to fail with."""
        with self.lock:
            b = self.behaviour
            mode = b["fail"]
            if mode == "none":
                return None
            if b["fail_on"] is not None and counter not in b["fail_on"]:
                return None
            n = b["fail_times"]
            if n is not None:
                if n <= 0:
                    b["fail"], b["fail_times"] = "none", None
                    return None
                b["fail_times"] = n - 1
                if n - 1 == 0:
                    b["fail"], b["fail_times"] = "none", None
            self.counts["injected_failures"] += 1
            return mode, b["hold_seconds"]


# -- HTTP --------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    json_type = "application/json;charset=UTF-8"
    json_ascii = False  # ensure_ascii for JSON answers
    html_title = "fake"

    def log_message(self, fmt, *args):  # quiet: the tests read nothing from stderr but errors
        pass

    @property
    def state(self):
        return self.server.state

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def route_path(self, path):
        return path.rstrip("/") or "/"

    def dispatch(self):
        url = urlsplit(self.path)
        path = self.route_path(url.path)
        # Always drain the body, so an early answer leaves a keep-alive connection usable.
        self.body = self.read_body()
        try:
            if path.startswith("/_control/"):
                return self.control(path)
            return self.api(path, url)
        except Exception as e:
            answer = self.error_answer(e)
            if answer is None:
                raise
            self.send_json(*answer)

    def api(self, path, url):
        raise NotImplementedError

    def error_answer(self, e):
        """(status, body[, headers]) for an exception from api() or control(); None re-raises.
        By default every exception is a bug in the fake, which says so instead of dropping
        the connection."""
        traceback.print_exc()
        return 500, self.bug_body(e)

    def bug_body(self, e):
        return {"error": f"FAKE_BUG {e!r}"}

    # -- bodies -----------------------------------------------------------------------------

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_object(self, error):
        """The JSON object body of an API call; `error(message)` is raised when it is not."""
        if "json" not in self.headers.get("Content-Type", "").lower():
            raise error("Content-Type must be application/json")
        try:
            v = json.loads(self.body or b"{}")
        except ValueError:
            raise error("request body is not valid JSON")
        if not isinstance(v, dict):
            raise error("request body must be a JSON object")
        return v

    def control_json(self):
        """The JSON object body of a control call ({} when empty); None after answering 400."""
        try:
            body = json.loads(self.body) if self.body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as e:
            self.send_json(400, {"error": f"bad JSON: {e}"})
            return None
        return body

    # -- answers ----------------------------------------------------------------------------

    def json_headers(self, body):
        return ()

    def send_json(self, status, body, headers=()):
        data = json.dumps(body, ensure_ascii=self.json_ascii).encode()
        self.send_response(status)
        self.send_header("Content-Type", self.json_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (*self.json_headers(body), *headers):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_html(self, status, text, location=None):
        data = f"<!doctype html><title>{self.html_title}</title><p>{text}</p>".encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json_late(self, status, body, delay, rec=None, busy=None):
        """Answers after `delay` seconds (behaviour "capture_delay"); what it answers is on
        record already, so a test can kill the caller while we sit on the answer. Then
        clears rec[busy], the mark that made a concurrent twin answer "being processed"."""
        if delay:
            time.sleep(delay)
            if busy is not None:
                with self.state.lock:
                    rec[busy] = False
        self.send_json(status, body)

    def hold_and_drop(self, seconds):
        time.sleep(seconds)
        self.close_connection = True

    # -- the payment fakes' failure injection and control endpoints -----------------------------

    def failure_body(self):
        """What an injected "500" answers."""
        raise NotImplementedError

    def rate_limit_body(self):
        """What an injected "429" answers."""
        return self.failure_body()

    def count_call(self, counter):
        """Counts an API call, then injects the failure the behaviour asks for; True when
        that answered the call."""
        with self.state.lock:
            self.state.counts[counter] += 1
        return self.inject_failure(counter)

    def inject_failure(self, counter=None):
        """Answers (or holds, then drops) this API call when the behaviour says it fails."""
        failure = self.state.take_failure(counter)
        if failure is None:
            return False
        mode, hold = failure
        if mode == "500":
            self.send_json(500, self.failure_body())
        elif mode == "429":
            self.send_json(429, self.rate_limit_body())
        else:
            self.hold_and_drop(hold)
        return True

    def state_view(self):
        """The /_control/state answer but the counters (the lock is held)."""
        raise NotImplementedError

    def control(self, path):
        body = self.control_json()
        if body is None:
            return None
        st = self.state
        if path == "/_control/behaviour":
            with st.lock:
                if self.command == "POST":
                    error = st.merge_behaviour(body)
                    if error is not None:
                        return self.send_json(400, error)
                return self.send_json(200, dict(st.behaviour))
        if path == "/_control/state" and self.command == "GET":
            with st.lock:
                out = self.state_view()
                out.update(st.counts)
            return self.send_json(200, out)
        if path == "/_control/reset" and self.command == "POST":
            with st.lock:
                st.reset()
            return self.send_json(200, {"reset": True})
        return self.control_more(path, body)

    def control_more(self, path, body):
        """Control endpoints besides behaviour, state and reset."""
        self.send_json(404, {"error": f"no such control endpoint: {self.command} {path}"})


# -- startup -------------------------------------------------------------------------------------


def arguments(doc, *required):
    """The command line: each of `required` (an option taking a value) and --exit-with-stdin."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    for opt in required:
        ap.add_argument(opt, required=True)
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    return ap.parse_args()


def serve(handler, state, args):
    """Binds 127.0.0.1:0, prints {"port": N}, serves until killed (or stdin closes, with
    --exit-with-stdin). `state` is the handlers' `self.state`; its `base` is set."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.state = state
    port = server.server_address[1]
    state.base = f"http://127.0.0.1:{port}"
    print(json.dumps({"port": port}), flush=True)

    if args.exit_with_stdin:
        def watch():
            sys.stdin.buffer.read()
            server.shutdown()

        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
