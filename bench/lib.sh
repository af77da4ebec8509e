# Shared steps of the benchmarks that seed a data root and time requests against a running
# cinegate (analytics.sh, console.sh). Source it after setting NAME (the log prefix) and
# SKIP_BUILD / KEEP_TMP; it defines:
#
#   log, die                 messages on stderr, prefixed [NAME]
#   REPO_DIR                 the checkout
#   bench_build EXAMPLE      cargo build --release of the binary and the seed example
#                            (skipped with SKIP_BUILD=1); sets CINEGATE and SEED.
#                            PROFILE=debug builds and runs the debug ones instead: a smoke
#                            run of the script itself, whose figures mean nothing
#   bench_tmp                a temp dir TMP, removed at exit (unless KEEP_TMP=1) after the
#                            server and any job in BENCH_KILL are stopped
#   bench_start              a server on TMP's data root and a free port; sets PID and BASE
#   bench_machine            the machine line every result table starts with
#   bench_time URL CURL_ARGS…  WARM warm-up requests, then RUNS timed ones; sets status,
#                            bytes, median and p90 (ms to the first byte)
#   bench_judge              PASS when status is 200 and median < MAX_MEDIAN_MS, else FAIL
#                            (counted in fails); sets result

log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$NAME" "$*" >&2; exit 1; }
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v curl >/dev/null || die "curl is missing"
fails=0

bench_build() {
  local profile=${PROFILE:-release} flag=--release
  [[ $profile == debug ]] && flag=""
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build $flag (binary and the $1 example)"
    (cd "$REPO_DIR" && cargo build $flag --quiet && cargo build $flag --quiet --example "$1")
  fi
  CINEGATE="$REPO_DIR/target/$profile/cinegate"
  SEED="$REPO_DIR/target/$profile/examples/$1"
  [[ -x $CINEGATE && -x $SEED ]] || die "build first (or SKIP_BUILD=0)"
}

PID=""
BENCH_KILL=()
bench_cleanup() {
  local job
  for job in "${BENCH_KILL[@]}"; do kill "$job" 2>/dev/null || true; done
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}

bench_tmp() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/cinegate-$NAME.XXXXXX")
  trap bench_cleanup EXIT
  # Only this run's settings: nothing from the caller's environment.
  while read -r v; do unset "$v"; done < <(compgen -e | grep '^CINEGATE_' || true)
  export CINEGATE_LISTEN=127.0.0.1:0
  export CINEGATE_MEDIA_DIR="$TMP/media"
  export CINEGATE_KEYS_DIR="$TMP/keys"
  export CINEGATE_PUBLIC_URL=http://127.0.0.1:1
  export CINEGATE_LOG=warn
  mkdir -p "$TMP/media"
}

bench_start() {
  (cd "$TMP" && exec "$CINEGATE" serve) >"$TMP/out" 2>"$TMP/log" &
  PID=$!
  local port=""
  for _ in $(seq 1 300); do
    port=$(sed -n 's|^cinegate listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$TMP/out" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/log" >&2; die "the server exited during start-up"; }
    sleep 0.1
  done
  [[ -n $port ]] || die "the server did not start"
  BASE="http://127.0.0.1:$port"
}

bench_machine() {
  printf '    Machine: %s, %s CPUs; cinegate %s; %s.\n' \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" \
    "$(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo '?')" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')"
}

bench_time() {
  local url=$1 times
  shift
  for _ in $(seq 1 "$WARM"); do curl -s -o /dev/null "$@" "$url"; done
  times=$(for _ in $(seq 1 "$RUNS"); do
    curl -s -o /dev/null "$@" -w '%{http_code} %{size_download} %{time_starttransfer}\n' "$url"
  done)
  status=$(awk 'NR==1{print $1}' <<<"$times")
  bytes=$(awk 'NR==1{print $2}' <<<"$times")
  read -r median p90 < <(awk '{print $3*1000}' <<<"$times" | sort -n |
    awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR+1)/2)], a[int(NR*0.9+0.5)]}')
}

bench_judge() {
  if [[ $status == 200 ]] && awk -v m="$median" -v t="$MAX_MEDIAN_MS" 'BEGIN{exit !(m < t)}'; then
    result=PASS
  else
    result=FAIL; fails=$((fails + 1))
  fi
}
