#!/usr/bin/env python3
"""The mobile app's whole flow through a client generated from the server's own OpenAPI
document by PyPI `openapi-python-client` (issue 18): an independent generator, so the test
holds the document to what an SDK built from it can do, and the server to the document.

    generated_client_flow.py BASE_URL PUBLIC_URL LOGIN_TOKEN FILM_ID WORK_DIR

1. fetch BASE_URL/api/v1/openapi.json and generate a client package from it in WORK_DIR;
2. with that client only: redeem the login link -> list films -> start playback (preview)
   -> check out with the dev provider -> (the payer's browser returns) -> the order is
   captured -> playback again (full) -> play every segment's key like a player -> progress
   says unlocked -> post a comment -> it is listed.

The generated models parse every answer strictly (a required field missing or an enum
value the document does not list raises), and `raise_on_unexpected_status` turns a status
the document does not list into a failure. Plain HTTP is used only where no JSON API is
involved: the payer's return from the provider's page, and the HLS playlists and keys
(what AVPlayer or ExoPlayer would fetch). Prints one JSON object with what was seen.
"""

import importlib
import json
import subprocess
import sys
import time
import typing
import urllib.request
from urllib.parse import urljoin
from pathlib import Path

base, public, login_token, film_id, work = sys.argv[1:6]
work = Path(work)
work.mkdir(parents=True, exist_ok=True)

doc = work / "openapi.json"
with urllib.request.urlopen(f"{base}/api/v1/openapi.json") as r:
    doc.write_bytes(r.read())
package = work / "cinegate_client"
subprocess.run(
    ["openapi-python-client", "generate", "--path", str(doc), "--meta", "none",
     "--output-path", str(package), "--overwrite"],
    check=True, stdout=subprocess.DEVNULL,
)
sys.path.insert(0, str(work))


def api(tag, operation):
    return importlib.import_module(f"cinegate_client.api.{tag}.{operation}")


def body_type(module):
    """The request model of an operation, from its signature: the test does not depend on
    the schemas' names, only on the operations and their fields."""
    return typing.get_type_hints(module.sync_detailed)["body"]


def call(module, *args, **kwargs):
    """Calls an operation; anything but a parsed success is a failure that says why."""
    resp = module.sync_detailed(*args, **kwargs)
    if not 200 <= resp.status_code < 300:
        raise SystemExit(f"{module.__name__}: {resp.status_code} {resp.content!r}")
    if resp.parsed is None:
        raise SystemExit(f"{module.__name__}: {resp.status_code} parsed to nothing")
    return resp.parsed


def value(x):
    """An enum's wire value: a generated Enum once the document lists the values, a str
    before."""
    return getattr(x, "value", x)


def local(url):
    """A URL the server made with its public address, reached at the test's address."""
    assert url.startswith(public), url
    return base + url[len(public):]


def get(url):
    with urllib.request.urlopen(url) as r:
        return r.status, r.read()


client_mod = importlib.import_module("cinegate_client")
anonymous = client_mod.Client(base_url=base, raise_on_unexpected_status=True)
seen = {}

# Sign in with the login link.
link = api("auth", "redeem_login_link")
pair = call(link, client=anonymous, body=body_type(link)(token=login_token))
seen["token_type"] = pair.token_type
viewer = client_mod.AuthenticatedClient(
    base_url=base, token=pair.access_token, raise_on_unexpected_status=True
)
seen["me"] = call(api("account", "get_me"), client=viewer).email

# The catalogue, and a preview to start with.
films = call(api("films", "list_films"), client=viewer)
seen["listed"] = any(f.id == film_id for f in films.films)
playback = call(api("films", "start_playback"), film_id, client=viewer)
seen["first_entitlement"] = value(playback.entitlement)

# Buy it with the dev provider; its "provider page" is the server's own return URL.
checkout = api("payments", "checkout")
co = call(checkout, film_id, client=viewer, body=body_type(checkout)(provider="dev"))
status, _ = get(local(co.redirect_url))
seen["return_status"] = status
order = call(api("payments", "get_order"), co.order_id, client=viewer)
seen["order_state"] = value(order.state)
seen["order_amount"] = [order.amount, order.currency]

# Play it all, as a player does: master -> media playlist -> each segment's key.
playback = call(api("films", "start_playback"), film_id, client=viewer)
seen["second_entitlement"] = value(playback.entitlement)
master_url = local(playback.master_url)
_, master = get(master_url)
media = next(line for line in master.decode().splitlines() if line and not line.startswith("#"))
media_url = urljoin(master_url, media)
_, playlist = get(media_url)
keys = [line for line in playlist.decode().splitlines() if line.startswith("#EXT-X-KEY")]
for k in keys:
    uri = k.split('URI="', 1)[1].split('"', 1)[0]
    status, key = get(urljoin(media_url, uri))
    assert status == 200 and len(key) == 16, (uri, status, len(key))
seen["keys"] = len(keys)

# The server counts what it delivered; its flusher writes every second.
progress_op = api("films", "get_film_progress")
deadline = time.monotonic() + 30
while True:
    progress = call(progress_op, film_id, client=viewer)
    if progress.unlocked or time.monotonic() > deadline:
        break
    time.sleep(0.5)
seen["unlocked"] = progress.unlocked
seen["coverage"] = progress.coverage

# Comment, and find it listed.
post = api("social", "post_comment")
text = "Generated clients can comment too."
comment = call(post, film_id, client=viewer, body=body_type(post)(body=text))
page = call(api("social", "list_comments"), film_id, client=viewer)
seen["comment_listed"] = any(c.id == comment.id and c.body == text for c in page.comments)

print(json.dumps(seen))
