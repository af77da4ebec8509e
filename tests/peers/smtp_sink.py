#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the notification tests: every message it accepts is
appended to DIR/messages.jsonl as {"mail_from", "rcpt_tos", "data"} plus what Python's own
`email` parser reads in it ("subject", "to", "text", "html", "content_types",
"list_unsubscribe", "list_unsubscribe_post"); while DIR/mode reads
"reject" it answers DATA with a permanent 550 and appends to DIR/rejected.jsonl instead.

    smtp_sink.py --port N --dir DIR [--exit-with-stdin]

Prints {"port": N} once it listens. Killing it is "the SMTP server is down"; starting it
again on the same port brings it back.
"""

import argparse
import email
import email.policy
import json
import os
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.dir = out_dir
        self.lock = threading.Lock()

    def mode(self):
        try:
            with open(os.path.join(self.dir, "mode"), encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return "accept"

    def append(self, name, record):
        with self.lock, open(os.path.join(self.dir, name), "a", encoding="utf-8") as f:
            # Flushed for the test to read; no fsync, which a loaded machine can stall for
            # seconds while the client waits for the reply to DATA.
            f.write(json.dumps(record) + "\n")
            f.flush()

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", errors="replace"),
        }
        record.update(parse(envelope.content))
        if self.mode() == "reject":
            self.append("rejected.jsonl", record)
            return "550 5.7.1 refused by the test"
        self.append("messages.jsonl", record)
        return "250 2.0.0 accepted"


def parse(raw):
    """The message as a mail client reads it: decoded headers and both parts' text."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return {
        "subject": str(msg["subject"] or ""),
        "to": str(msg["to"] or ""),
        "content_types": [part.get_content_type() for part in msg.walk()],
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
        "list_unsubscribe": msg["list-unsubscribe"] and str(msg["list-unsubscribe"]),
        "list_unsubscribe_post": msg["list-unsubscribe-post"] and str(msg["list-unsubscribe-post"]),
    }


def main():
    ap = argparse.ArgumentParser(description="SMTP sink for the notification tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(json.dumps({"port": args.port}), flush=True)
    done = threading.Event()
    if args.exit_with_stdin:
        def watch():
            sys.stdin.buffer.read()
            done.set()

        threading.Thread(target=watch, daemon=True).start()
    try:
        while not done.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()
