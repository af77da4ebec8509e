#!/usr/bin/env bash
# Analytics benchmark (issue 17): how long `GET /api/v1/admin/analytics` takes on a year
# of daily rollups for 1,000 films (target: under 50 ms).
#
#   A data root seeded by `examples/seed_analytics.rs` (FILMS films × DAYS days of rollups
#   through the consumer's own transaction, sign-ups, and a 900-segment retention curve of
#   VIEWERS viewers for the first film), the server started on it, an admin signed in with
#   a login link (bearer token). Each request is made WARM times, then RUNS times with
#   curl; the time to the first byte (curl's time_starttransfer, on loopback: the server's
#   work plus a round trip) is reported as median and p90. With hyperfine on PATH, it
#   also times the whole-site year (`HYPERFINE=1`, the default when present).
#
#   Requests: the whole site over the last DAYS days by day (series of DAYS buckets, the
#   funnel, top films by revenue per currency and by watch hours: the month index plus
#   the edge days of 1,000 films), the same by month, the same as CSV, one film over the
#   year by day, and the first film's retention curve.
#
# Environment: FILMS=1000 DAYS=365 VIEWERS=200 WARM=5 RUNS=50
#              SKIP_BUILD=0 (1: use target/release/cinegate and its seed_analytics example)
#              KEEP_TMP=0
# Output: a markdown table for docs/BENCHMARKS.md with PASS/FAIL per request (median < 50 ms).
set -euo pipefail
FILMS=${FILMS:-1000}
DAYS=${DAYS:-365}
VIEWERS=${VIEWERS:-200}
WARM=${WARM:-5}
RUNS=${RUNS:-50}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
MAX_MEDIAN_MS=50

log() { printf '[analytics-bench] %s\n' "$*" >&2; }
die() { printf '[analytics-bench] error: %s\n' "$*" >&2; exit 1; }
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
command -v curl >/dev/null || die "curl is missing"

if [[ $SKIP_BUILD != 1 ]]; then
  log "cargo build --release (binary and the seed example)"
  (cd "$REPO_DIR" && cargo build --release --quiet && cargo build --release --quiet --example seed_analytics)
fi
CINEGATE="$REPO_DIR/target/release/cinegate"
SEED="$REPO_DIR/target/release/examples/seed_analytics"
[[ -x $CINEGATE && -x $SEED ]] || die "build first (or SKIP_BUILD=0)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cinegate-analytics-bench.XXXXXX")
PID=""
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

while read -r v; do unset "$v"; done < <(compgen -e | grep '^CINEGATE_' || true)
export CINEGATE_LISTEN=127.0.0.1:0
export CINEGATE_MEDIA_DIR="$TMP/media"
export CINEGATE_KEYS_DIR="$TMP/keys"
export CINEGATE_PUBLIC_URL=http://127.0.0.1:1
export CINEGATE_LOG=warn
mkdir -p "$TMP/media"

log "seeding $FILMS films × $DAYS days"
seed_start=$(date +%s.%N)
FILM=$("$SEED" "$TMP/media" "$FILMS" "$DAYS" "$VIEWERS")
seed_secs=$(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
[[ -n $FILM ]] || die "the seed printed no film id"

(cd "$TMP" && exec "$CINEGATE" serve) >"$TMP/out" 2>"$TMP/log" &
PID=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's|^cinegate listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$TMP/out" | head -n 1)
  [[ -n $PORT ]] && break
  kill -0 "$PID" 2>/dev/null || { cat "$TMP/log" >&2; die "the server exited during start-up"; }
  sleep 0.1
done
[[ -n $PORT ]] || die "the server did not start"
BASE="http://127.0.0.1:$PORT"

# An admin's bearer token, from a login link.
"$CINEGATE" user create admin@bench.example --admin >/dev/null
LINK=$("$CINEGATE" user login-link admin@bench.example | tail -n 1)
TOKEN=$(curl -s -H 'Content-Type: application/json' -d "{\"token\":\"${LINK##*token=}\"}" \
  "$BASE/api/v1/auth/link" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || die "no access token from the login link"
AUTH="Authorization: Bearer $TOKEN"

TO=$(date -u +%F)
FROM=$(date -u -d "$TO - $((DAYS - 1)) days" +%F)
Q="from=$FROM&to=$TO"
REQUESTS=("/api/v1/admin/analytics?$Q&granularity=day"
  "/api/v1/admin/analytics?$Q&granularity=month"
  "/api/v1/admin/analytics?$Q&granularity=day&format=csv"
  "/api/v1/admin/analytics?$Q&granularity=day&film=$FILM"
  "/api/v1/admin/analytics/films/$FILM/retention")

cat <<EOF

    Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; cinegate $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo '?'); $(date -u '+%Y-%m-%d %H:%M UTC').
    FILMS=$FILMS DAYS=$DAYS VIEWERS=$VIEWERS WARM=$WARM RUNS=$RUNS; seeding took ${seed_secs} s; store $(du -sh "$TMP/media/store" | cut -f1).

| request | status | bytes | median ms | p90 ms | target | result |
|---|---:|---:|---:|---:|---|---|
EOF
fails=0
for req in "${REQUESTS[@]}"; do
  for _ in $(seq 1 "$WARM"); do curl -s -o /dev/null -H "$AUTH" "$BASE$req"; done
  times=$(for _ in $(seq 1 "$RUNS"); do
    curl -s -o /dev/null -H "$AUTH" -w '%{http_code} %{size_download} %{time_starttransfer}\n' "$BASE$req"
  done)
  status=$(awk 'NR==1{print $1}' <<<"$times")
  bytes=$(awk 'NR==1{print $2}' <<<"$times")
  read -r median p90 < <(awk '{print $3*1000}' <<<"$times" | sort -n |
    awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR+1)/2)], a[int(NR*0.9+0.5)]}')
  if [[ $status == 200 ]] && awk -v m="$median" -v t="$MAX_MEDIAN_MS" 'BEGIN{exit !(m < t)}'; then
    result=PASS
  else
    result=FAIL; fails=$((fails + 1))
  fi
  shown=${req//$FILM/\{film\}}
  shown=${shown//$Q/from=…\&to=…}
  printf '| `%s` | %s | %s | %s | %s | < %s ms | %s |\n' "$shown" "$status" "$bytes" "$median" "$p90" "$MAX_MEDIAN_MS" "$result"
done

if command -v hyperfine >/dev/null && [[ ${HYPERFINE:-1} == 1 ]]; then
  echo
  hyperfine --style basic --warmup "$WARM" --runs "$RUNS" --export-markdown "$TMP/hf.md" \
    "curl -s -o /dev/null -H '$AUTH' '$BASE/api/v1/admin/analytics?$Q&granularity=day'" >&2
  sed "s|$TOKEN|…|g; s|$BASE||g" "$TMP/hf.md"
fi
echo
log "$fails target(s) missed"
