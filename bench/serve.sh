#!/usr/bin/env bash
# Serving benchmark: cinegate against nginx on loopback, with wrk.
#
# Both servers serve the same files of one packaged film, each checking a signed URL on every
# request: cinegate its playback token (/hls/{token}/…), nginx its secure_link module
# (md5 + expires query arguments, 403 for a bad signature, 410 once expired). Both run
# 2 workers (actix's default on this 2-CPU machine; nginx worker_processes 2), access logs off.
#
#   segment   the largest 720p segment of a 30 s 1280x720 film at 2800k (≈2 MB), 6 s segments
#   key       a 16-byte AES-128 key (nginx: a file holding the key cinegate served)
#   playlist  the 720p media playlist (nginx: a file holding the text cinegate served)
#
# For each: a short warm-up, then `wrk -t2 -c64 -d${DURATION}s --latency` (keep-alive).
# Then: cinegate's RSS with 1000 idle keep-alive connections open (bench/idle_conns.py), and
# the progress recorder in isolation (`cargo run --release --example progress_bench`, when
# examples/progress_bench.rs exists).
#
# Environment:
#   DURATION=15        seconds per wrk run (DURATION=3 for a smoke run)
#   WARMUP=2           seconds of wrk before each measured run (not reported)
#   CONNECTIONS=64     wrk connections;  THREADS=2  wrk threads
#   IDLE_CONNS=1000    idle keep-alive connections for the RSS figure
#   IDLE_LINGER=6      then wait this long and count how many the server kept open (0: skip)
#   SKIP_BUILD=0       1: do not run cargo build, use the existing target/release/cinegate
#   KEEP_TMP=0         1: keep the temp dir (film, configs, logs, wrk output) for inspection
#
# Output: markdown tables to paste into docs/BENCHMARKS.md, with PASS/FAIL per target:
# segments ≥ 0.80× nginx req/s, keys and playlists ≥ 0.50×, p99 < 1.5× nginx's,
# RSS ≤ 150 MB with 1000 idle connections, progress ≥ 100 000 segment events/s.
# Exit status is 0 even when a target is missed; it is non-zero only when something broke.
set -euo pipefail

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_LINGER=${IDLE_LINGER:-6}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

SOURCE_SECONDS=30
LADDER="720:2800k"
RENDITION=720
NGINX_WORKERS=2
MIN_SEGMENT_BYTES=$((3 * 1024 * 1024 / 2)) # 1.5 MB
INGEST_TIMEOUT=600

# Targets
MIN_SEGMENT_RATIO=0.80
MIN_KEY_RATIO=0.50
MIN_PLAYLIST_RATIO=0.50
MAX_P99_RATIO=1.5
MAX_IDLE_RSS_MB=150
MIN_EVENTS_PER_S=100000

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

for v in DURATION WARMUP CONNECTIONS THREADS IDLE_CONNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $IDLE_LINGER =~ ^[0-9]+$ ]] || die "IDLE_LINGER must be a whole number of seconds, got '$IDLE_LINGER'"

# ---------------------------------------------------------------- dependencies
have() { command -v "$1" >/dev/null 2>&1; }
# Debian puts nginx in /usr/sbin, which is not on a normal user's PATH.
NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
need_pkgs=()
[[ -x $NGINX_BIN ]] || need_pkgs+=(nginx)
have wrk || need_pkgs+=(wrk)
have ffmpeg || need_pkgs+=(ffmpeg)
have curl || need_pkgs+=(curl)
have openssl || need_pkgs+=(openssl)
have python3 || need_pkgs+=(python3)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -eq 0 ]] && have apt-get; then
    log "installing missing packages: ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
  else
    die "missing: ${need_pkgs[*]} (install them, e.g. apt-get install ${need_pkgs[*]})"
  fi
fi
nginx_build=$("$NGINX_BIN" -V 2>&1 || true)
[[ $nginx_build == *--with-http_secure_link_module* ]] ||
  die "$NGINX_BIN was built without the secure_link module"
NGINX_MIME=/etc/nginx/mime.types
[[ -f $NGINX_MIME ]] || die "$NGINX_MIME not found (Debian's nginx package installs it)"

# 1000 idle connections need more than the usual 1024 descriptors, in cinegate and in the client.
want_nofile=$((IDLE_CONNS + 1024))
hard_nofile=$(ulimit -Hn)
if [[ $hard_nofile != unlimited ]] && ((hard_nofile < want_nofile)); then
  want_nofile=$hard_nofile
fi
ulimit -n "$want_nofile" 2>/dev/null || log "could not raise ulimit -n to $want_nofile (now $(ulimit -n))"
(($(ulimit -n) > IDLE_CONNS + 64)) || log "warning: ulimit -n is $(ulimit -n); $IDLE_CONNS idle connections may not fit"

# ---------------------------------------------------------------- temp dir, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cinegate-serve-bench.XXXXXX")
CINEGATE_PID=""
NGINX_PID=""
CHILD_PIDS=()

stop_pid() { # stop_pid PID: SIGTERM, up to 10 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${CHILD_PIDS[@]}"; do stop_pid "$pid"; done
  if [[ -n $NGINX_PID ]]; then stop_pid "$NGINX_PID"; fi
  if [[ -n $CINEGATE_PID ]]; then
    if ! kill -0 "$CINEGATE_PID" 2>/dev/null; then
      # It ended on its own before we stopped it (the error above may only say "curl failed").
      local rc=0
      wait "$CINEGATE_PID" 2>/dev/null || rc=$?
      log "cinegate (pid $CINEGATE_PID) had already ended: exit status $rc$( ((rc > 128)) && printf ' = signal %s' "$((rc - 128))")"
      tail -n 10 "$TMP/cinegate.log" >&2 || true
    fi
    stop_pid "$CINEGATE_PID"
  fi
  if [[ $KEEP_TMP == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf -- "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_child CMD...: run CMD in the background and wait for it, so a signal to this script
# reaches the trap at once and cleanup can stop CMD. Returns CMD's exit status.
run_child() {
  local pid rc=0
  "$@" &
  pid=$!
  CHILD_PIDS+=("$pid")
  wait "$pid" || rc=$?
  unset 'CHILD_PIDS[-1]'
  return "$rc"
}

# json EXPR: read JSON on stdin, print the Python expression EXPR over it (bound to d).
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

LOAD_START=$(loadavg)

# ---------------------------------------------------------------- build
CINEGATE="$REPO_DIR/target/release/cinegate"
HAVE_PROGRESS_EXAMPLE=0
[[ -f $REPO_DIR/examples/progress_bench.rs ]] && HAVE_PROGRESS_EXAMPLE=1
if [[ $SKIP_BUILD != 1 ]]; then
  log "cargo build --release"
  (cd "$REPO_DIR" && cargo build --release) >"$TMP/build.log" 2>&1 ||
    { tail -n 30 "$TMP/build.log" >&2 || true; die "cargo build --release failed"; }
fi
[[ -x $CINEGATE ]] || die "$CINEGATE does not exist (run without SKIP_BUILD=1)"

# ---------------------------------------------------------------- cinegate
# Only this script's settings: no stray CINEGATE_* from the caller, no config.toml (cwd = $TMP).
while read -r v; do unset "$v"; done < <(compgen -e | grep '^CINEGATE_' || true)
export CINEGATE_LISTEN=127.0.0.1:0
export CINEGATE_MEDIA_DIR="$TMP/media"
export CINEGATE_KEYS_DIR="$TMP/keys"
export CINEGATE_PUBLIC_URL=http://127.0.0.1:1
# warn only: cinegate's access log is at info (cinegate::startup), nginx's is off.
export CINEGATE_LOG=warn
export CINEGATE_TRANSCODE__LADDER="$LADDER"
export CINEGATE_TRANSCODE__PRESET=ultrafast

cg() { (cd "$TMP" && "$CINEGATE" "$@"); }

# cinegate_gone WHEN: cinegate is no longer running; die with how it ended and its last log lines.
cinegate_gone() {
  local rc=0 sig
  wait "$CINEGATE_PID" 2>/dev/null || rc=$?
  CINEGATE_PID=""
  log "last lines of cinegate's log:"
  tail -n 20 "$TMP/cinegate.log" >&2 || true
  if ((rc > 128)); then
    sig=$(kill -l "$((rc - 128))" 2>/dev/null || echo '?')
    die "cinegate died $1: killed by signal $((rc - 128)) (SIG$sig), nothing logged above means no panic message"
  fi
  die "cinegate exited $1 with status $rc"
}

log "starting cinegate serve"
(cd "$TMP" && exec "$CINEGATE" serve) >"$TMP/cinegate.out" 2>"$TMP/cinegate.log" &
CINEGATE_PID=$!
CG_PORT=""
for ((i = 0; i < 300; i++)); do
  CG_PORT=$(sed -n 's|^cinegate listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$TMP/cinegate.out" | head -n 1)
  [[ -n $CG_PORT ]] && break
  kill -0 "$CINEGATE_PID" 2>/dev/null || cinegate_gone "during start-up"
  sleep 0.1
done
[[ -n $CG_PORT ]] || die "cinegate did not print its listening line within 30 s"
CG="http://127.0.0.1:$CG_PORT"
CG_RSS_BOOT=$(rss_kb "$CINEGATE_PID")
log "cinegate pid $CINEGATE_PID on $CG"

# api METHOD PATH TOKEN [JSON]: the response body on stdout; dies on a non-2xx status.
api() {
  local method=$1 path=$2 token=$3 body=${4-} out="$TMP/api.out" code
  local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token")
  [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data "$body")
  code=$(curl "${args[@]}" "$CG$path") || die "$method $path: curl failed"
  [[ $code == 2?? ]] || die "$method $path answered $code: $(head -c 400 "$out")"
  cat "$out"
}

sign_in() { # sign_in EMAIL -> access token
  local link token
  link=$(cg user login-link "$1" | tail -n 1)
  token=${link##*token=}
  [[ -n $token && $token != "$link" ]] || die "login-link for $1 printed no ?token=: '$link'"
  api POST /api/v1/auth/link "" "{\"token\":\"$token\"}" | json 'd["access_token"]'
}

cg user create admin@x.test --admin >/dev/null
cg user create viewer@x.test >/dev/null
ADMIN_TOKEN=$(sign_in admin@x.test)
VIEWER_TOKEN=$(sign_in viewer@x.test)
VIEWER_ID=$(api GET /api/v1/me "$VIEWER_TOKEN" | json 'd["id"]')

# ---------------------------------------------------------------- film
SRC="$TMP/source.mp4"
log "encoding the ${SOURCE_SECONDS}s 1280x720 source"
ffmpeg -nostdin -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=$SOURCE_SECONDS" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SOURCE_SECONDS" \
  -map 0:v:0 -map 1:a:0 \
  -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p \
  -c:a aac -b:a 192k -ar 48000 -ac 2 \
  -movflags +faststart "$SRC"

log "cinegate ingest (ladder $LADDER, preset ultrafast)"
cg ingest "$SRC" --title Bench --publish >"$TMP/ingest.out" 2>&1 ||
  { cat "$TMP/ingest.out" >&2; die "cinegate ingest failed"; }
FILM_ID=""
for ((i = 0; i < INGEST_TIMEOUT; i++)); do
  jobs_json=$(api GET /api/v1/admin/jobs "$ADMIN_TOKEN")
  job_line=$(json '" ".join([(d["jobs"][0]["state"] if d["jobs"] else "none"), (d["jobs"][0]["film_id"] if d["jobs"] else "-"), str((d["jobs"][0].get("error") if d["jobs"] else None) or "")])' <<<"$jobs_json")
  read -r state FILM_ID reason <<<"$job_line"
  case $state in
    ready) break ;;
    failed | cancelled) die "packaging job $state: $reason" ;;
  esac
  sleep 1
done
[[ $state == ready ]] || die "packaging not ready after ${INGEST_TIMEOUT}s (state $state)"
log "film $FILM_ID ready"

api PUT "/api/v1/admin/films/$FILM_ID/grants/$VIEWER_ID" "$ADMIN_TOKEN" >/dev/null
PLAYBACK=$(api POST "/api/v1/films/$FILM_ID/playback" "$VIEWER_TOKEN")
entitlement=$(json 'd["entitlement"]' <<<"$PLAYBACK")
[[ $entitlement == full ]] || die "the granted viewer got entitlement '$entitlement', not full"
MASTER_URL=$(json 'd["master_url"]' <<<"$PLAYBACK")
MASTER_PATH=/${MASTER_URL#*://*/}
[[ $MASTER_PATH =~ ^/hls/([^/]+)/master\.m3u8$ ]] || die "unexpected master_url '$MASTER_URL'"
HLS="/hls/${BASH_REMATCH[1]}"

shopt -s nullglob
pkgs=("$TMP/media/films/$FILM_ID"/pkg-*)
shopt -u nullglob
((${#pkgs[@]} == 1)) || die "expected one package dir under media/films/$FILM_ID, found ${#pkgs[@]}"
PKG_REND="${pkgs[0]}/$RENDITION"
largest=$(find "$PKG_REND" -maxdepth 1 -name '*.ts' -type f -printf '%s %f\n' | sort -n | tail -n 1)
read -r SEG_BYTES SEG_NAME <<<"$largest"
[[ -n ${SEG_NAME:-} ]] || die "no segments in $PKG_REND"
((SEG_BYTES >= MIN_SEGMENT_BYTES)) ||
  die "largest segment $SEG_NAME is $SEG_BYTES bytes, below $MIN_SEGMENT_BYTES (is the ladder $LADDER honoured?)"
[[ $SEG_NAME =~ ^0*([0-9]+)\.ts$ ]] || die "unexpected segment name $SEG_NAME"
KEY_INDEX=${BASH_REMATCH[1]}
SEG_COUNT=$(find "$PKG_REND" -maxdepth 1 -name '*.ts' -type f | wc -l | tr -d ' ')
log "segment $SEG_NAME ($SEG_BYTES bytes) of $SEG_COUNT; key $KEY_INDEX"

declare -A CG_URL NX_URL
CG_URL[segment]="$CG$HLS/$RENDITION/$SEG_NAME"
CG_URL[key]="$CG$HLS/keys/$KEY_INDEX.key"
CG_URL[playlist]="$CG$HLS/$RENDITION/index.m3u8"

# check_200 URL OUT: fetch URL into OUT, die loudly on anything but 200.
check_200() {
  local code
  code=$(curl -sS -o "$2" -w '%{http_code}' "$1") || die "GET $1: curl failed"
  [[ $code == 200 ]] || die "GET $1 answered $code, not 200: $(head -c 300 "$2")"
}
for r in segment key playlist; do check_200 "${CG_URL[$r]}" "$TMP/cinegate.$r"; done
cmp -s "$TMP/cinegate.segment" "$PKG_REND/$SEG_NAME" || die "cinegate served a segment that differs from $PKG_REND/$SEG_NAME"
[[ $(stat -c %s "$TMP/cinegate.key") == 16 ]] || die "cinegate's key is not 16 bytes"
CG_RSS_START=$(rss_kb "$CINEGATE_PID")

# ---------------------------------------------------------------- nginx
NGX="$TMP/nginx"
mkdir -p "$NGX/www/$RENDITION" "$NGX/www/keys" "$NGX/temp"
cp "$TMP/cinegate.key" "$NGX/www/keys/$KEY_INDEX.key"
cp "$TMP/cinegate.playlist" "$NGX/www/$RENDITION/index.m3u8"
NX_PORT=$(free_port)
# As root, nginx workers would switch to an unprivileged user that cannot read the
# 0700 temp dir; the benchmark serves only its own files, so keep root.
nginx_user=""
[[ $(id -u) -eq 0 ]] && nginx_user="user root root;"
cat >"$NGX/nginx.conf" <<EOF
daemon off;
$nginx_user
worker_processes $NGINX_WORKERS;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
    include $NGINX_MIME;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path $NGX/temp/client_body;
    proxy_temp_path $NGX/temp/proxy;
    fastcgi_temp_path $NGX/temp/fastcgi;
    uwsgi_temp_path $NGX/temp/uwsgi;
    scgi_temp_path $NGX/temp/scgi;
    server {
        listen 127.0.0.1:$NX_PORT;
        server_name bench;
        # Every request carries a signed URL: ?md5=…&expires=…
        secure_link \$arg_md5,\$arg_expires;
        secure_link_md5 "\$secure_link_expires\$uri secret";
        if (\$secure_link = "") { return 403; }
        if (\$secure_link = "0") { return 410; }
        # the segment files of cinegate's package, as they are
        location /seg/ { alias $PKG_REND/; }
        # the key and the media playlist cinegate served
        location / { root $NGX/www; }
    }
}
EOF
"$NGINX_BIN" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" -t >"$NGX/configtest.log" 2>&1 ||
  { cat "$NGX/configtest.log" >&2; die "nginx -t rejected the generated config"; }
log "starting nginx on 127.0.0.1:$NX_PORT ($NGINX_WORKERS workers)"
"$NGINX_BIN" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" >"$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
NX="http://127.0.0.1:$NX_PORT"
for ((i = 0; i < 100; i++)); do
  curl -s -o /dev/null "$NX/" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$NGX/error.log" >&2 || true; die "nginx exited during start-up"; }
  sleep 0.1
done

# signed URI [EXPIRES]: URI?md5=…&expires=… for secure_link_md5 "$secure_link_expires$uri secret"
signed() {
  local uri=$1 expires=${2:-$(($(date +%s) + 3600))} md5
  md5=$(printf '%s' "$expires$uri secret" | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =)
  printf '%s?md5=%s&expires=%s' "$uri" "$md5" "$expires"
}
NX_URL[segment]="$NX$(signed "/seg/$SEG_NAME")"
NX_URL[key]="$NX$(signed "/keys/$KEY_INDEX.key")"
NX_URL[playlist]="$NX$(signed "/$RENDITION/index.m3u8")"
for r in segment key playlist; do
  check_200 "${NX_URL[$r]}" "$TMP/nginx.$r"
  cmp -s "$TMP/nginx.$r" "$TMP/cinegate.$r" || die "nginx and cinegate serve different $r bodies"
done
# nginx really checks the signature: a tampered one gets 403, an expired one 410.
bad_code=$(curl -s -o /dev/null -w '%{http_code}' "${NX_URL[key]/md5=/md5=x}")
old_code=$(curl -s -o /dev/null -w '%{http_code}' "$NX$(signed "/keys/$KEY_INDEX.key" "$(($(date +%s) - 10))")")
[[ $bad_code == 403 && $old_code == 410 ]] ||
  die "nginx secure_link is not enforced (tampered: $bad_code, expired: $old_code; want 403, 410)"

# ---------------------------------------------------------------- wrk
# to_ms 1.23ms|456.78us|1.02s|1.5m -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.2f", n }'
}

# bench NAME URL: warm up, then the measured run; sets RPS P99 NON2XX ERRORS XFER
bench() {
  local name=$1 url=$2 out="$TMP/wrk.$1.txt"
  run_child wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >"$TMP/wrk.$name.warmup.txt" 2>&1 ||
    die "wrk warm-up for $name failed: $(tail -n 5 "$TMP/wrk.$name.warmup.txt")"
  run_child wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 ||
    die "wrk for $name failed: $(tail -n 5 "$out")"
  RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P99=$(awk '$1 == "99%" { print $2 }' "$out")
  [[ -n $RPS && -n $P99 ]] || { cat "$out" >&2; die "could not parse wrk's output for $name"; }
  P99=$(to_ms "$P99")
  NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  NON2XX=${NON2XX:-0}
  ERRORS=$(sed -n 's/^ *Socket errors: *//p' "$out")
  XFER=$(awk '/^Transfer\/sec:/ { print $2 }' "$out")
}

declare -A C_RPS C_P99 N_RPS N_P99 NOTES
PROBLEMS=()
for r in segment key playlist; do
  log "wrk $r: cinegate (${WARMUP}s warm-up + ${DURATION}s)"
  bench "cinegate-$r" "${CG_URL[$r]}"
  C_RPS[$r]=$RPS C_P99[$r]=$P99
  NOTES[$r]="cinegate $XFER/s"
  [[ $NON2XX == 0 ]] || PROBLEMS+=("cinegate $r: $NON2XX non-2xx/3xx responses under load")
  [[ -z $ERRORS ]] || PROBLEMS+=("cinegate $r: wrk socket errors: $ERRORS")
  kill -0 "$CINEGATE_PID" 2>/dev/null || cinegate_gone "during the $r run"

  log "wrk $r: nginx (${WARMUP}s warm-up + ${DURATION}s)"
  bench "nginx-$r" "${NX_URL[$r]}"
  N_RPS[$r]=$RPS N_P99[$r]=$P99
  NOTES[$r]+=", nginx $XFER/s"
  [[ $NON2XX == 0 ]] || PROBLEMS+=("nginx $r: $NON2XX non-2xx/3xx responses under load")
  [[ -z $ERRORS ]] || PROBLEMS+=("nginx $r: wrk socket errors: $ERRORS")
done
# The same URLs still answer 200 after the load (no token or state went bad under load).
for r in segment key playlist; do check_200 "${CG_URL[$r]}" "$TMP/cinegate.after.$r"; done
LOAD_AFTER_WRK=$(loadavg)

# ---------------------------------------------------------------- idle connections
log "RSS with $IDLE_CONNS idle keep-alive connections"
CG_RSS_BEFORE_IDLE=$(rss_kb "$CINEGATE_PID")
run_child python3 "$SCRIPT_DIR/idle_conns.py" --port "$CG_PORT" --pid "$CINEGATE_PID" \
  --count "$IDLE_CONNS" --settle 1 --linger "$IDLE_LINGER" >"$TMP/idle.txt" 2>"$TMP/idle.err" ||
  { cat "$TMP/idle.err" >&2; die "bench/idle_conns.py failed"; }
idle() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/idle.txt"; }
IDLE_BASE=$(idle baseline_rss_kb)
IDLE_RSS=$(idle loaded_rss_kb)
IDLE_OPENED=$(idle opened)
IDLE_FAILED=$(idle failed)
IDLE_OPEN_AT=$(idle open_at_measure)
IDLE_OPEN_LATER=$(idle open_after_linger)
[[ -n $IDLE_RSS ]] || { cat "$TMP/idle.txt" "$TMP/idle.err" >&2; die "no RSS from bench/idle_conns.py"; }
((IDLE_FAILED == 0)) || PROBLEMS+=("idle connections: $IDLE_FAILED of $IDLE_CONNS got no complete 200 for GET /healthz")
((IDLE_OPEN_AT == IDLE_OPENED)) ||
  PROBLEMS+=("idle connections: cinegate closed $((IDLE_OPENED - IDLE_OPEN_AT)) of $IDLE_OPENED within ~1 s of their response")
kill -0 "$CINEGATE_PID" 2>/dev/null || cinegate_gone "during the idle-connection test"

# ---------------------------------------------------------------- stop servers, progress bench
stop_pid "$NGINX_PID"
NGINX_PID=""
stop_pid "$CINEGATE_PID"
CINEGATE_PID=""

EVENTS="" BROKEN=0
run_progress_example() { cd "$REPO_DIR" && cargo run --release --example progress_bench; }
if [[ $HAVE_PROGRESS_EXAMPLE == 1 ]]; then
  log "cargo run --release --example progress_bench (servers stopped)"
  if run_child run_progress_example >"$TMP/progress_bench.log" 2>&1; then
    EVENTS=$(sed -n 's/^events\/s: *\([0-9.][0-9.]*\).*/\1/p' "$TMP/progress_bench.log" | tail -n 1)
    [[ -n $EVENTS ]] || { tail -n 20 "$TMP/progress_bench.log" >&2; log "progress_bench printed no 'events/s: N' line"; BROKEN=1; }
  else
    tail -n 20 "$TMP/progress_bench.log" >&2 || true
    log "progress_bench failed"
    BROKEN=1
  fi
fi

# ---------------------------------------------------------------- report
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y > 0) printf "%.2f", x / y; else print "inf" }'; }
at_least() { awk -v x="$1" -v m="$2" 'BEGIN { print ((x != "inf" && x + 0 >= m + 0) ? "PASS" : "FAIL") }'; }
below() { awk -v x="$1" -v m="$2" 'BEGIN { print ((x != "inf" && x + 0 < m + 0) ? "PASS" : "FAIL") }'; }
at_most() { awk -v x="$1" -v m="$2" 'BEGIN { print ((x + 0 <= m + 0) ? "PASS" : "FAIL") }'; }

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
dirty=$(git -C "$REPO_DIR" status --porcelain -- src transcoder Cargo.toml 2>/dev/null | head -n 1 || true)
[[ -n $dirty ]] && rev+=" + uncommitted changes"
nginx_v=$("$NGINX_BIN" -v 2>&1 | sed 's|^nginx version: nginx/||')
wrk_v=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
seg_mb=$(awk -v b="$SEG_BYTES" 'BEGIN { printf "%.2f", b / 1048576 }')
key_b=$(stat -c %s "$TMP/cinegate.key")
pl_b=$(stat -c %s "$TMP/cinegate.playlist")

echo
echo "### Serving benchmark"
echo
echo "cinegate (2 actix workers, log warn) vs nginx ${nginx_v} (${NGINX_WORKERS} workers, sendfile, secure_link"
echo "md5+expires checked per request, access_log off), loopback, keep-alive."
echo "wrk ${wrk_v:-?} -t${THREADS} -c${CONNECTIONS} -d${DURATION}s --latency after a ${WARMUP} s warm-up; client and server share the CPUs."
echo "Film: ${SOURCE_SECONDS} s 1280x720 testsrc2 + sine, ladder ${LADDER} (ultrafast), ${SEG_COUNT} segments."
echo "Resources: segment ${SEG_NAME} (${SEG_BYTES} bytes, ${seg_mb} MB), key ${key_b} bytes, media playlist ${pl_b} bytes."
echo "Machine: ${cpu_model:-unknown CPU}, $(nproc) CPUs; cinegate ${rev}; $(date -u +%Y-%m-%d)."
echo "Load average (1/5/15 min): ${LOAD_START} at start, ${LOAD_AFTER_WRK} after the wrk runs."
echo
echo "| resource | cinegate req/s | nginx req/s | ratio | cinegate p99 ms | nginx p99 ms | p99 ratio | req/s target | p99 target |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
declare -A MIN_RATIO=([segment]=$MIN_SEGMENT_RATIO [key]=$MIN_KEY_RATIO [playlist]=$MIN_PLAYLIST_RATIO)
for r in segment key playlist; do
  rr=$(ratio "${C_RPS[$r]}" "${N_RPS[$r]}")
  pr=$(ratio "${C_P99[$r]}" "${N_P99[$r]}")
  echo "| $r | ${C_RPS[$r]} | ${N_RPS[$r]} | $rr | ${C_P99[$r]} | ${N_P99[$r]} | $pr |" \
    "≥ ${MIN_RATIO[$r]}: $(at_least "$rr" "${MIN_RATIO[$r]}") | < ${MAX_P99_RATIO}: $(below "$pr" "$MAX_P99_RATIO") |"
done
echo
echo "Transfer: segment ${NOTES[segment]}; key ${NOTES[key]}; playlist ${NOTES[playlist]}."
echo
idle_mb=$(kb_to_mb "$IDLE_RSS")
echo "| target | measured | limit | result |"
echo "|---|---:|---:|---|"
echo "| cinegate RSS MB, ${IDLE_OPEN_AT} idle keep-alive connections open | $idle_mb | ≤ $MAX_IDLE_RSS_MB | $(at_most "$idle_mb" "$MAX_IDLE_RSS_MB") |"
if [[ $HAVE_PROGRESS_EXAMPLE == 0 ]]; then
  echo "| progress recording, segment events/s | skipped (no examples/progress_bench.rs) | ≥ $MIN_EVENTS_PER_S | - |"
elif [[ -n $EVENTS ]]; then
  echo "| progress recording, segment events/s | $EVENTS | ≥ $MIN_EVENTS_PER_S | $(at_least "$EVENTS" "$MIN_EVENTS_PER_S") |"
else
  echo "| progress recording, segment events/s | error (progress_bench failed) | ≥ $MIN_EVENTS_PER_S | - |"
fi
echo
echo "cinegate RSS: $(kb_to_mb "$CG_RSS_BOOT") MB after start-up, $(kb_to_mb "$CG_RSS_START") MB after packaging the film (in-process), $(kb_to_mb "$CG_RSS_BEFORE_IDLE") MB after the wrk runs,"
echo "$(kb_to_mb "$IDLE_BASE") MB just before opening $IDLE_CONNS connections, $idle_mb MB with $IDLE_OPEN_AT of them open" \
  "(${IDLE_OPENED} answered 200, ${IDLE_FAILED} failed)."
if [[ -n $IDLE_OPEN_LATER ]]; then
  echo "${IDLE_OPEN_LATER} of the ${IDLE_OPENED} connections were still open ${IDLE_LINGER} s later (a server keep-alive timeout closes idle ones)."
fi

# Server-side trouble: anything cinegate logged at warn or above, nginx errors.
if [[ -s $TMP/cinegate.log ]]; then
  PROBLEMS+=("cinegate logged $(wc -l <"$TMP/cinegate.log" | tr -d ' ') line(s) at warn level or above (first 10 below)")
fi
nginx_errs=$(grep -cvE '\[(notice|info)\]' "$NGX/error.log" 2>/dev/null || true)
((${nginx_errs:-0} == 0)) || PROBLEMS+=("nginx error.log has $nginx_errs line(s) (first 10 below)")
echo
if ((${#PROBLEMS[@]})); then
  echo "Problems seen:"
  for p in "${PROBLEMS[@]}"; do echo "- $p"; done
  if [[ -s $TMP/cinegate.log ]]; then
    echo
    echo '```'
    head -n 10 "$TMP/cinegate.log"
    echo '```'
  fi
  if ((${nginx_errs:-0} > 0)); then
    echo
    echo '```'
    grep -vE '\[(notice|info)\]' "$NGX/error.log" | head -n 10
    echo '```'
  fi
else
  echo "No problems seen: every request answered 2xx, no wrk socket errors, nothing in the server logs."
fi
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  echo
  echo "Note: the load average was ${LOAD_START%% *} on $(nproc) CPUs at the start: the machine was not idle, so the figures are pessimistic."
fi
if ((BROKEN)); then exit 1; fi
