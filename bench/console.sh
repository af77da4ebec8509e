#!/usr/bin/env bash
# Console benchmark (issue 15): how long the admin console's pages take to render with a
# shop's worth of records, and the server's memory while a 2 GB file is uploaded through
# the console's tus endpoint.
#
#   pages    a data root seeded by `examples/seed_console.rs` (FILMS films, ORDERS orders
#            over 30 days, COMMENTS comments, 500 viewers), the server started on it, an
#            admin signed in with a login link (session cookie, as the browser holds it);
#            each page fetched WARM times, then RUNS times with curl; the time to the
#            first byte (curl's time_starttransfer, on loopback: the server's render time
#            plus a round trip) is reported as median and p90.
#   upload   a sparse UPLOAD_MB file streamed in one tus PATCH to /admin/uploads (the
#            console's endpoint, with the session cookie); the server's RSS sampled every
#            0.2 s from /proc. The file is zeros, so the probe refuses it (422) once the
#            last byte is in; what is measured is the transfer.
#
# Environment: FILMS=1000 ORDERS=10000 COMMENTS=5000 WARM=5 RUNS=50 UPLOAD_MB=2048 (0: skip)
#              SKIP_BUILD=0 (1: use target/release/cinegate and its seed_console example)
#              KEEP_TMP=0
# Output: markdown tables for docs/BENCHMARKS.md with PASS/FAIL per target (median < 50 ms
# per page; RSS during the upload no more than 32 MB above its level before).
set -euo pipefail
FILMS=${FILMS:-1000}
ORDERS=${ORDERS:-10000}
COMMENTS=${COMMENTS:-5000}
WARM=${WARM:-5}
RUNS=${RUNS:-50}
UPLOAD_MB=${UPLOAD_MB:-2048}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
MAX_MEDIAN_MS=50
MAX_RSS_RISE_MB=32

NAME=console-bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_build seed_console
bench_tmp

log "seeding $FILMS films, $ORDERS orders, $COMMENTS comments"
"$SEED" "$TMP/media" "$FILMS" "$ORDERS" "$COMMENTS" >&2

bench_start
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }

# An admin and its browser session (the cookie jar), as the console's sign-in makes it.
"$CINEGATE" user create admin@bench.example --admin >/dev/null
LINK=$("$CINEGATE" user login-link admin@bench.example | tail -n 1)
TOKEN=${LINK##*token=}
JAR="$TMP/cookies"
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$JAR" -H 'X-Requested-With: cinegate' \
  --data-urlencode "token=$TOKEN" "$BASE/admin/sign-in/link")
[[ $code == 204 ]] || die "console sign-in answered $code"

first_id() { # the first /admin/<noun>/<uuid> link on a page
  curl -s -b "$JAR" "$BASE$1" | grep -o "href=\"/admin/$2/[0-9a-f-]\{36\}\"" | head -n 1 | sed 's|.*/||; s|"||'
}
FILM_ID=$(first_id /admin/films films || true)
ORDER_ID=$(first_id /admin/orders orders || true)
USER_ID=$(first_id /admin/users users || true)

PAGES=(/admin /admin/films "/admin/films?page=10" "/admin/films?q=Night" "/admin/films?state=ready"
  /admin/orders "/admin/orders?state=refunded" "/admin/orders?page=50" /admin/comments /admin/users
  "/admin/users?q=viewer42" /admin/system)
[[ -n $FILM_ID ]] && PAGES+=("/admin/films/$FILM_ID")
[[ -n $ORDER_ID ]] && PAGES+=("/admin/orders/$ORDER_ID")
[[ -n $USER_ID ]] && PAGES+=("/admin/users/$USER_ID")

echo
bench_machine
cat <<EOF
    FILMS=$FILMS ORDERS=$ORDERS COMMENTS=$COMMENTS WARM=$WARM RUNS=$RUNS

| page | status | bytes | median ms | p90 ms | target | result |
|---|---:|---:|---:|---:|---|---|
EOF
for page in "${PAGES[@]}"; do
  bench_time "$BASE$page" -b "$JAR"
  bench_judge
  printf '| `%s` | %s | %s | %s | %s | < %s ms | %s |\n' "$page" "$status" "$bytes" "$median" "$p90" "$MAX_MEDIAN_MS" "$result"
done

if ((UPLOAD_MB > 0)); then
  FILM=$(first_id "/admin/films?state=draft" films || true)
  [[ -n $FILM ]] || FILM=$FILM_ID
  [[ -n $FILM ]] || die "no film to upload to"
  BIG="$TMP/big.bin"
  truncate -s "${UPLOAD_MB}M" "$BIG"
  LEN=$(stat -c %s "$BIG")
  META="film_id $(printf '%s' "$FILM" | base64 -w0),filename $(printf 'big.mp4' | base64 -w0)"
  LOC=$(curl -s -D - -o /dev/null -b "$JAR" -X POST -H 'X-Requested-With: cinegate' \
    -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $LEN" -H "Upload-Metadata: $META" \
    "$BASE/admin/uploads" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  [[ -n $LOC ]] || die "the console's tus endpoint gave no Location"
  RSS0=$(rss_kb)
  (while kill -0 "$PID" 2>/dev/null; do rss_kb >>"$TMP/rss"; sleep 0.2; done) &
  SAMPLER=$!
  BENCH_KILL+=("$SAMPLER")
  start=$(date +%s.%N)
  code=$(curl -s -o "$TMP/patch.out" -w '%{http_code}' -b "$JAR" -X PATCH -T "$BIG" \
    -H 'X-Requested-With: cinegate' -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' "$BASE$LOC")
  end=$(date +%s.%N)
  sleep 0.5
  kill "$SAMPLER" 2>/dev/null || true
  RSS1=$(rss_kb)
  MAX=$(sort -n "$TMP/rss" | tail -n 1)
  rise=$(( (MAX - RSS0) / 1024 ))
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  mbps=$(awk -v s="$secs" -v m="$UPLOAD_MB" 'BEGIN{printf "%.0f", m/s}')
  if ((rise <= MAX_RSS_RISE_MB)); then result=PASS; else result=FAIL; fails=$((fails + 1)); fi
  cat <<EOF

| upload | answer | seconds | MB/s | RSS before MB | RSS peak MB | RSS after MB | rise MB | target | result |
|---|---:|---:|---:|---:|---:|---:|---:|---|---|
| ${UPLOAD_MB} MB, one tus PATCH | $code | $secs | $mbps | $((RSS0 / 1024)) | $((MAX / 1024)) | $((RSS1 / 1024)) | $rise | ≤ $MAX_RSS_RISE_MB MB | $result |
EOF
fi
echo
log "$fails target(s) missed"
