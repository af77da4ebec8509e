#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive connections to a server and report its RSS.

Used by bench/serve.sh. Opens N TCP connections to HOST:PORT, sends one
`GET PATH HTTP/1.1` (keep-alive) request on each, reads each whole response, keeps
every socket open, waits SETTLE seconds, then reads VmRSS of PID from /proc.

Prints `key value` lines on stdout (sizes in kB):
    baseline_rss_kb N     before the first connection
    opened N              connections whose request got a complete 200 response
    failed N              connections that failed (connect, send or read)
    open_at_measure N     still open (not closed by the server) when RSS was read
    loaded_rss_kb N       with the connections open
    open_after_linger N   still open LINGER seconds later (shows a keep-alive timeout)
Exit status 0 unless the arguments are wrong or PID does not exist.
"""

import argparse
import errno
import os
import selectors
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def still_open(sock):
    """True while the peer has not closed the connection (no FIN, no RST)."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return data != b""


class Conn:
    def __init__(self, sock, request):
        self.sock = sock
        self.out = request
        self.buf = b""
        self.done = False
        self.ok = False

    def response_complete(self):
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = self.buf[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buf) < head_end + 4 + length:
            return False
        status = head.split(" ", 2)
        self.ok = len(status) > 1 and status[1] == "200"
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="server process to measure")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--path", default="/healthz")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between the last response and reading RSS")
    ap.add_argument("--linger", type=float, default=0.0,
                    help="then wait this long and count the connections still open")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    baseline = rss_kb(args.pid)
    print(f"baseline_rss_kb {baseline}", flush=True)

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "Connection: keep-alive\r\n\r\n").encode("ascii")
    sel = selectors.DefaultSelector()
    conns = []
    failed = 0
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((args.host, args.port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        c = Conn(s, request)
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)

    deadline = time.monotonic() + args.timeout
    pending = len(conns)
    while pending and time.monotonic() < deadline:
        for key, events in sel.select(timeout=0.5):
            c = key.data
            try:
                if events & selectors.EVENT_WRITE and c.out:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                    if not c.out:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                if events & selectors.EVENT_READ:
                    data = c.sock.recv(65536)
                    if not data:
                        raise OSError("closed before the response was complete")
                    c.buf += data
                    if c.response_complete():
                        c.done = True
                        sel.unregister(c.sock)
                        pending -= 1
            except OSError:
                c.done = True
                c.ok = False
                sel.unregister(c.sock)
                pending -= 1
    sel.close()

    good = [c for c in conns if c.done and c.ok]
    failed += len(conns) - len(good)
    print(f"opened {len(good)}", flush=True)
    print(f"failed {failed}", flush=True)

    time.sleep(args.settle)
    open_now = sum(1 for c in good if still_open(c.sock))
    loaded = rss_kb(args.pid)
    print(f"open_at_measure {open_now}", flush=True)
    print(f"loaded_rss_kb {loaded}", flush=True)

    if args.linger > 0:
        time.sleep(args.linger)
        print(f"open_after_linger {sum(1 for c in good if still_open(c.sock))}", flush=True)

    for c in conns:
        c.sock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ProcessLookupError) as e:
        print(f"idle_conns: {e}", file=sys.stderr)
        sys.exit(2)
