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

NAME=analytics-bench
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_build seed_analytics
bench_tmp

log "seeding $FILMS films × $DAYS days"
seed_start=$(date +%s.%N)
FILM=$("$SEED" "$TMP/media" "$FILMS" "$DAYS" "$VIEWERS")
seed_secs=$(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
[[ -n $FILM ]] || die "the seed printed no film id"

bench_start

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

echo
bench_machine
cat <<EOF
    FILMS=$FILMS DAYS=$DAYS VIEWERS=$VIEWERS WARM=$WARM RUNS=$RUNS; seeding took ${seed_secs} s; store $(du -sh "$TMP/media/store" | cut -f1).

| request | status | bytes | median ms | p90 ms | target | result |
|---|---:|---:|---:|---:|---|---|
EOF
for req in "${REQUESTS[@]}"; do
  bench_time "$BASE$req" -H "$AUTH"
  bench_judge
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
