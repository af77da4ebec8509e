#!/usr/bin/env bash
# Publishing benchmark: `cinegate storage migrate` against the AWS CLI, uploading the same
# package into one Garage node on loopback.
#
# One film (a generated DURATION-second 1280x720 source, testsrc2 + sine) is packaged once by
# `cinegate ingest` with no server and `[storage] mode = "local"`. Then its package directory
# goes to the bucket RUNS times each way, the objects deleted after every upload:
#
#   cinegate  `cinegate storage migrate` with [storage] switched to mode = "s3" (CINEGATE_STORAGE__*),
#             on the store directly (no server): 8 uploads in flight, each object checked
#             first (HEAD), sent (PUT with Content-Type and Cache-Control) and read back (HEAD:
#             size, and the ETag against the file's MD5), then the film's record flipped
#   aws       `aws s3 cp --recursive` of the same directory into another prefix (the CLI's
#             defaults: 10 requests in flight, multipart above 8 MB): PUTs only, nothing read back
#
# Both wall times include the process start (the AWS CLI's Python start-up, cinegate's store
# open). Before each migrate the data root's store is put back as it was after packaging, so
# every run moves the whole package again. Garage stores blocks by content hash and keeps a
# deleted block for a while, so an upload of bytes it has seen may skip the disk write: an
# unmeasured AWS CLI upload goes first, so every measured upload meets the same state, and the
# order of the two alternates from run to run.
#
# Environment:
#   DURATION=180       seconds of source film (2-5 minutes is what the figures in docs/ are for)
#   LADDER=720:2800k,480:1400k,360:800k   the packaging ladder;  PRESET=ultrafast  x264 preset
#   RUNS=3             uploads each way; the median is reported
#   MAX_RATIO=1.5      target: cinegate's median wall time at most this times the AWS CLI's
#   GARAGE=…           the garage binary (default: the one scripts/install-deps.sh builds into
#                      ~/.cache/cinegate/garage/bin, else garage on PATH)
#   SKIP_BUILD=0       1: use the existing target/release/cinegate
#   PROFILE=release    debug: smoke-test the script on a debug build (figures mean nothing)
#   KEEP_TMP=0         1: keep the temp dir (source, data root, Garage's config and log)
#
# Output: a markdown table for docs/BENCHMARKS.md with PASS/FAIL. Exit status 0 even when the
# target is missed; non-zero only when something broke.
set -euo pipefail

NAME=storage
DURATION=${DURATION:-180}
LADDER=${LADDER:-720:2800k,480:1400k,360:800k}
PRESET=${PRESET:-ultrafast}
RUNS=${RUNS:-3}
MAX_RATIO=${MAX_RATIO:-1.5}
PROFILE=${PROFILE:-release}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for v in DURATION RUNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $MAX_RATIO =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "MAX_RATIO must be a number, got '$MAX_RATIO'"

# ---------------------------------------------------------------- dependencies
have() { command -v "$1" >/dev/null 2>&1; }
have ffmpeg || die "ffmpeg is missing (apt-get install ffmpeg)"
have aws || die "the AWS CLI is missing (scripts/install-deps.sh installs it with pip)"
have python3 || die "python3 is missing"
have openssl || die "openssl is missing"
[[ -x /usr/bin/time ]] || die "GNU time is missing (apt-get install time)"
if [[ -z ${GARAGE:-} ]]; then
  GARAGE="$HOME/.cache/cinegate/garage/bin/garage"
  [[ -x $GARAGE ]] || GARAGE=$(command -v garage || true)
fi
[[ -n $GARAGE && -x $GARAGE ]] ||
  die "Garage is not installed: run scripts/install-deps.sh (it builds Garage 2.5.0 into ~/.cache/cinegate/garage), or set GARAGE"

# ---------------------------------------------------------------- build
flag=--release
[[ $PROFILE == debug ]] && flag=""
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build $flag"
  (cd "$REPO_DIR" && cargo build $flag --quiet)
fi
CINEGATE="$REPO_DIR/target/$PROFILE/cinegate"
[[ -x $CINEGATE ]] || die "$CINEGATE does not exist (run without SKIP_BUILD=1)"

# ---------------------------------------------------------------- temp dir, cleanup
bench_tmp
GARAGE_PID=""
storage_cleanup() {
  if [[ -n $GARAGE_PID ]]; then
    kill "$GARAGE_PID" 2>/dev/null || true
    wait "$GARAGE_PID" 2>/dev/null || true
  fi
  bench_cleanup
}
trap storage_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export CINEGATE_TRANSCODE__LADDER="$LADDER"
export CINEGATE_TRANSCODE__PRESET="$PRESET"
cg() { (cd "$TMP" && "$CINEGATE" "$@"); }

# ---------------------------------------------------------------- Garage
free_ports() { # free_ports N: N distinct free loopback ports, held together while chosen
  python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
read -r S3_PORT RPC_PORT ADMIN_PORT < <(free_ports 3)
BUCKET=bench
REGION=garage
# Garage's key ids are GK + 24 hex digits; the secret is 64 hex digits.
ACCESS_KEY_ID="GK$(openssl rand -hex 12)"
SECRET_ACCESS_KEY=$(openssl rand -hex 32)
G="$TMP/garage"
mkdir -p "$G"
(
  umask 077
  cat >"$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "lmdb"
replication_factor = 1
rpc_secret = "$(openssl rand -hex 32)"
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"

[s3_api]
api_bind_addr = "127.0.0.1:$S3_PORT"
s3_region = "$REGION"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF
  # awscli 1.x would sign some regions with SigV2, which Garage refuses: SigV4, path style.
  printf '[default]\ns3 =\n  signature_version = s3v4\n  addressing_style = path\n' >"$G/aws.config"
)
log "starting one Garage node ($("$GARAGE" --version 2>/dev/null | awk 'NR == 1 { sub(/^cargo:/, "", $2); print $2 }')) on 127.0.0.1:$S3_PORT"
GARAGE_DEFAULT_ACCESS_KEY=$ACCESS_KEY_ID GARAGE_DEFAULT_SECRET_KEY=$SECRET_ACCESS_KEY \
  GARAGE_DEFAULT_BUCKET=$BUCKET RUST_LOG=garage=warn \
  "$GARAGE" -c "$G/garage.toml" server --single-node --default-bucket >"$G/garage.log" 2>&1 &
GARAGE_PID=$!

ENDPOINT="http://127.0.0.1:$S3_PORT"
# The AWS CLI against the node with the bench key, the caller's AWS settings ignored.
AWS=(env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_PROFILE
  AWS_ACCESS_KEY_ID="$ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET_ACCESS_KEY"
  AWS_CONFIG_FILE="$G/aws.config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  aws --endpoint-url "$ENDPOINT" --region "$REGION")
s3() { "${AWS[@]}" "$@" </dev/null; }
garage_gone() {
  tail -n 20 "$G/garage.log" >&2 || true
  die "the Garage node exited $1"
}
# Ready = /health says 200 and the default key can list the default bucket; polled, not slept.
for ((i = 0; ; i++)); do
  kill -0 "$GARAGE_PID" 2>/dev/null || garage_gone "during start-up"
  if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/health") == 200 ]] &&
    s3 s3api list-objects-v2 --bucket "$BUCKET" --max-items 1 >/dev/null 2>&1; then
    break
  fi
  ((i < 300)) || { tail -n 20 "$G/garage.log" >&2; die "Garage was not ready in 30 s"; }
  sleep 0.1
done

# objects_under PREFIX: "COUNT BYTES" of the objects under PREFIX (ListObjectsV2, all pages).
objects_under() {
  local out
  out=$(s3 s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1" \
    --query '[length(Contents || `[]`), sum(Contents[].Size || `[]`)]' --output text) ||
    die "listing s3://$BUCKET/$1 failed"
  awk '{ printf "%d %d\n", $1, $2 }' <<<"$out"
}
delete_under() {
  s3 s3 rm --recursive --only-show-errors "s3://$BUCKET/$1" >/dev/null || die "deleting s3://$BUCKET/$1 failed"
  [[ $(objects_under "$1") == "0 0" ]] || die "s3://$BUCKET/$1 still holds objects after the delete"
}
garage_cpu() { # Garage's CPU seconds so far (user + system)
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$GARAGE_PID/stat"
}

# ---------------------------------------------------------------- package once
SRC="$TMP/source.mp4"
log "encoding the ${DURATION} s 1280x720 source"
ffmpeg -nostdin -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=$DURATION" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$DURATION" \
  -map 0:v:0 -map 1:a:0 -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p \
  -c:a aac -b:a 192k -ar 48000 -ac 2 -movflags +faststart "$SRC"

log "cinegate ingest (no server, [storage] mode = \"local\"; ladder $LADDER, $PRESET)"
t0=$(date +%s.%N)
CINEGATE_STORAGE__MODE=local cg ingest "$SRC" --title "Storage bench" >"$TMP/ingest.out" 2>"$TMP/ingest.err" ||
  { tail -n 20 "$TMP/ingest.err" >&2; die "cinegate ingest failed"; }
PACKAGE_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
shopt -s nullglob
pkgs=("$TMP"/media/films/*/pkg-*)
shopt -u nullglob
((${#pkgs[@]} == 1)) || die "expected one package directory under media/films, found ${#pkgs[@]}"
PKG=${pkgs[0]}
PKG_DIR=$(basename "$PKG")
FILM_ID=$(basename "$(dirname "$PKG")")
OBJECTS=$(find "$PKG" -type f | wc -l | tr -d ' ')
BYTES=$(find "$PKG" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
SEGMENTS=$(find "$PKG" -type f -name '*.ts' | wc -l | tr -d ' ')
LARGEST=$(find "$PKG" -type f -printf '%s\n' | sort -n | tail -n 1)
((OBJECTS > 0)) || die "the package $PKG is empty"
log "film $FILM_ID packaged in ${PACKAGE_S}s: $OBJECTS files ($SEGMENTS segments), $BYTES bytes"
# The store as packaging left it: put back before every migrate, so each moves the whole film.
cp -a "$TMP/media/store" "$TMP/store.packaged"

CG_PREFIX="cinegate/"
CG_KEY="${CG_PREFIX}films/$FILM_ID/$PKG_DIR/"
AWS_KEY="aws/films/$FILM_ID/$PKG_DIR/"

# timed OUT CMD…: run CMD under GNU time; sets WALL and CPU (the client's user+sys seconds)
# and GCPU (Garage's CPU seconds meanwhile). Returns CMD's status.
timed() {
  local out=$1 rc=0 g0
  shift
  g0=$(garage_cpu)
  /usr/bin/time -f '%e %U %S' -o "$TMP/time" "$@" >"$out" 2>&1 </dev/null || rc=$?
  GCPU=$(awk -v a="$g0" -v b="$(garage_cpu)" 'BEGIN { printf "%.2f", b - a }')
  read -r WALL u s < <(tail -n 1 "$TMP/time")
  CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
  return "$rc"
}

# check_bucket TOOL KEY: the bucket holds exactly the package under KEY.
check_bucket() {
  local got
  got=$(objects_under "$2")
  [[ $got == "$OBJECTS $BYTES" ]] ||
    die "$1: s3://$BUCKET/$2 holds '$got' (objects bytes), the package is '$OBJECTS $BYTES'"
}

run_cinegate() {
  rm -rf "$TMP/media/store"
  cp -a "$TMP/store.packaged" "$TMP/media/store"
  timed "$TMP/migrate.out" env CINEGATE_STORAGE__MODE=s3 CINEGATE_STORAGE__ENDPOINT="$ENDPOINT" \
    CINEGATE_STORAGE__REGION="$REGION" CINEGATE_STORAGE__BUCKET="$BUCKET" \
    CINEGATE_STORAGE__PREFIX="$CG_PREFIX" CINEGATE_STORAGE__ACCESS_KEY_ID="$ACCESS_KEY_ID" \
    CINEGATE_STORAGE__SECRET_ACCESS_KEY="$SECRET_ACCESS_KEY" CINEGATE_STORAGE__PATH_STYLE=true \
    CINEGATE_STORAGE__PUBLIC_BASE_URL=http://127.0.0.1:1/ \
    bash -c 'cd "$1" && shift && exec "$@"' _ "$TMP" "$CINEGATE" storage migrate ||
    { cat "$TMP/migrate.out" >&2; die "cinegate storage migrate failed"; }
  grep -qxF "1 film(s) moved to the bucket ($OBJECTS objects, $BYTES bytes)" "$TMP/migrate.out" ||
    { cat "$TMP/migrate.out" >&2; die "cinegate storage migrate did not report moving $OBJECTS objects, $BYTES bytes"; }
  check_bucket cinegate "$CG_KEY"
  delete_under "$CG_PREFIX"
}

run_aws() {
  timed "$TMP/aws.out" "${AWS[@]}" s3 cp --recursive --only-show-errors --no-progress "$PKG/" "s3://$BUCKET/$AWS_KEY" ||
    { cat "$TMP/aws.out" >&2; die "aws s3 cp failed"; }
  check_bucket aws "$AWS_KEY"
  delete_under aws/
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up: one unmeasured aws s3 cp (Garage then holds every block once, as in every measured run)"
run_aws

declare -a C_WALL C_CPU C_GCPU A_WALL A_CPU A_GCPU
for ((r = 1; r <= RUNS; r++)); do
  order=(cinegate aws)
  ((r % 2 == 0)) && order=(aws cinegate)
  for tool in "${order[@]}"; do
    if [[ $tool == cinegate ]]; then
      run_cinegate
      C_WALL+=("$WALL") C_CPU+=("$CPU") C_GCPU+=("$GCPU")
    else
      run_aws
      A_WALL+=("$WALL") A_CPU+=("$CPU") A_GCPU+=("$GCPU")
    fi
    log "run $r $tool: ${WALL}s wall, client CPU ${CPU}s, Garage CPU ${GCPU}s"
    kill -0 "$GARAGE_PID" 2>/dev/null || garage_gone "during the $tool upload of run $r"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else print "inf" }'; }
c_wall=$(median "${C_WALL[@]}")
a_wall=$(median "${A_WALL[@]}")
ratio=$(awk -v c="$c_wall" -v a="$a_wall" 'BEGIN { if (a > 0) printf "%.2f", c / a; else print "inf" }')
result=$(awk -v r="$ratio" -v m="$MAX_RATIO" 'BEGIN { print ((r != "inf" && r + 0 <= m + 0) ? "PASS" : "FAIL") }')
join() { local IFS=/; echo "$*"; }

echo
echo "### Publishing to a bucket"
echo
bench_machine
printf '    Garage %s, one node on loopback (lmdb, replication 1); aws-cli %s.\n' \
  "$("$GARAGE" --version 2>/dev/null | awk 'NR == 1 { sub(/^cargo:/, "", $2); print $2 }')" \
  "$(aws --version 2>&1 | awk '{ sub(/^aws-cli\//, "", $1); print $1 }')"
printf '    Film: %s s 1280x720, ladder %s (%s), packaged in %s s; %s files (%s segments, largest %s bytes).\n' \
  "$DURATION" "$LADDER" "$PRESET" "$PACKAGE_S" "$OBJECTS" "$SEGMENTS" "$LARGEST"
printf '    Load average (1/5/15 min): %s at the first upload, %s after the last.\n' "$LOAD_START" "$LOAD_END"
echo
echo "| upload | objects | bytes | median s | MB/s | runs s | client CPU s | Garage CPU s |"
echo "|---|---:|---:|---:|---:|---|---|---|"
echo "| \`cinegate storage migrate\` (HEAD, PUT, HEAD per object) | $OBJECTS | $BYTES | $c_wall | $(mbps "$c_wall") |" \
  "$(join "${C_WALL[@]}") | $(join "${C_CPU[@]}") | $(join "${C_GCPU[@]}") |"
echo "| \`aws s3 cp --recursive\` (PUT per object) | $OBJECTS | $BYTES | $a_wall | $(mbps "$a_wall") |" \
  "$(join "${A_WALL[@]}") | $(join "${A_CPU[@]}") | $(join "${A_GCPU[@]}") |"
echo
echo "| target | measured | limit | result |"
echo "|---|---:|---:|---|"
echo "| wall time cinegate / aws (medians of $RUNS) | $ratio | ≤ $MAX_RATIO | $result |"
if [[ $PROFILE == debug ]]; then
  echo
  echo "Debug build: a smoke run of the script; these figures mean nothing."
fi
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  echo
  echo "Note: the load average was ${LOAD_START%% *} on $(nproc) CPUs at the start: the machine was not idle."
fi
