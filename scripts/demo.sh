#!/usr/bin/env bash
# `make demo`: runs the server on the built-in defaults (media/ and keys/ in this folder,
# http://127.0.0.1:8080), and on first run creates an admin and a viewer, generates a
# 60-second sample film, ingests and publishes it. Then prints what to open, and keeps the
# server in the foreground until Ctrl-C.
set -euo pipefail
bin=./target/release/cinegate
listen=${CINEGATE_LISTEN:-127.0.0.1:8080}
export CINEGATE_LISTEN=$listen
export CINEGATE_LOG=${CINEGATE_LOG:-warn}
export CINEGATE_PUBLIC_URL=${CINEGATE_PUBLIC_URL:-http://$listen}
# The demo buys with the `dev` payment provider (approves without money); never in production.
export CINEGATE_PAYMENTS__DEV__ENABLED=${CINEGATE_PAYMENTS__DEV__ENABLED:-true}
base=$CINEGATE_PUBLIC_URL
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

mkdir -p media
sample=media/sample-film.mp4
if [ ! -f "$sample" ]; then
  echo "generating a 60-second sample film: $sample"
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$sample"
fi

if curl -fsS "$base/healthz" >/dev/null 2>&1; then
  echo "something already answers on $base; stop it or set CINEGATE_LISTEN=127.0.0.1:PORT" >&2
  exit 1
fi
"$bin" serve &
server=$!
# The server may have stopped on its own (SIGTERM from elsewhere): nothing left to stop is fine.
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

"$bin" user create admin@cinegate.local --admin >/dev/null 2>&1 || true
"$bin" user create viewer@cinegate.local >/dev/null 2>&1 || true
link_token() { "$bin" user login-link "$1" | tail -n 1 | sed 's/.*token=//'; }
access_token() {
  curl -fsS -X POST "$base/api/v1/auth/link" -H 'content-type: application/json' \
    -d "{\"token\":\"$(link_token "$1")\"}" | json "d['access_token']"
}
admin=$(access_token admin@cinegate.local)
film=$(curl -fsS "$base/api/v1/admin/films" -H "authorization: Bearer $admin" |
  json "next((f['id'] for f in d['films'] if f['title']=='Sample film'), '')")
if [ -z "$film" ]; then
  "$bin" ingest "$sample" --title "Sample film" --price 500 --currency USD --publish
  film=$(curl -fsS "$base/api/v1/admin/films" -H "authorization: Bearer $admin" |
    json "next(f['id'] for f in d['films'] if f['title']=='Sample film')")
fi
echo "packaging the sample film (job progress from the admin API):"
while :; do
  state=$(curl -fsS "$base/api/v1/admin/films/$film" -H "authorization: Bearer $admin" |
    json "d['status'] + ' ' + str(round(100*max([j['progress'] for j in d['jobs']] or [0])))")
  printf '\r  %s%%   ' "$state"
  case $state in published*|ready*) break ;; failed*) echo; echo "packaging failed" >&2; exit 1 ;; esac
  sleep 1
done
echo
viewer=$(access_token viewer@cinegate.local)
master=$(curl -fsS -X POST "$base/api/v1/films/$film/playback" -H "authorization: Bearer $viewer" |
  json "d['master_url'] + ' ' + d['entitlement'] + ' ' + str(d['preview_segments']) + '/' + str(d['total_segments'])")
read -r url entitlement segments <<<"$master"

cat <<MSG

cinegate is running at $base (data in ./media, secrets in ./keys).

  admin console (one-time sign-in link, 15 min):
    $base/admin/sign-in?token=$(link_token admin@cinegate.local)
  the viewer app, signed in as the demo viewer, on the sample film's page (one-time, 15 min):
    $base/sign-in?next=/films/$film&token=$(link_token viewer@cinegate.local)

  The viewer has not bought the film: entitlement "$entitlement", $segments segments.
  From a terminal instead of the browser, play the preview (it stops after ~10%):
    ffplay '$url'
  or decode it:  ffmpeg -i '$url' -f null -
  Buy the film as the viewer (the demo's "dev" provider approves at once), then play the
  same URL again — it now plays to the end:
    curl -s -X POST -H 'authorization: Bearer $viewer' -H 'content-type: application/json' \\
      -d '{"provider":"dev"}' $base/api/v1/films/$film/checkout
    # open the printed redirect_url (or: curl -s "<redirect_url>") to complete the purchase

Ctrl-C stops the server.
MSG
wait $server
