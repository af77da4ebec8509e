#!/usr/bin/env bash
# Transcode benchmark: package one synthetic 1080p30 source into the same 4-rung HLS ladder
# three ways and compare wall time, CPU time and peak RSS.
#
#   (a) the ffmpeg CLI once per rendition, one after another
#   (b) one ffmpeg CLI process, split=4 filter graph feeding four encoders (-var_stream_map)
#   (c) cinegate package (target/release/cinegate, built here with cargo build --release)
#
# Environment:
#   DURATION=60                   source length in seconds (DURATION=8 for a smoke run)
#   PRESET=veryfast               x264 preset for all three contenders
#   ALLOW_MISSING_CINEGATE=0      1: skip (c) with a message if the build (or the run) fails
#   SKIP_BUILD=0                  1: do not run cargo build, use the existing target/release/cinegate
#   KEEP_TMP=0                    1: keep the temp dir (outputs and logs) for inspection
#
# Output: a markdown table to paste into docs/BENCHMARKS.md, the ratios c/a and c/b
# (wall time) and whether the targets hold (c/b <= 1.00, c/a <= 0.75, peak RSS (c) <= 400 MB).
# Exit status is 0 even when a target is missed; it is non-zero only when something broke.
set -euo pipefail

DURATION=${DURATION:-60}
PRESET=${PRESET:-veryfast}
ALLOW_MISSING_CINEGATE=${ALLOW_MISSING_CINEGATE:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}

LADDER="1080:5000k,720:2800k,480:1400k,360:800k"
# name width height video-bitrate(kbit/s); must match LADDER
RUNGS=(
  "1080 1920 1080 5000"
  "720 1280 720 2800"
  "480 854 480 1400"
  "360 640 360 800"
)
SEG=6
GOP=360
TIME_BIN=/usr/bin/time

# Targets
MAX_C_OVER_B=1.00
MAX_C_OVER_A=0.75
MAX_RSS_MB=400

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer (seconds), got '$DURATION'"
[[ $PRESET =~ ^[a-z]+$ ]] || die "PRESET looks wrong: '$PRESET'"

# ---------------------------------------------------------------- dependencies
need_pkgs=()
command -v ffmpeg >/dev/null 2>&1 || need_pkgs+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need_pkgs+=(ffmpeg)
[[ -x $TIME_BIN ]] || need_pkgs+=(time)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing missing packages: ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    die "missing: ${need_pkgs[*]} (install them, e.g. apt-get install ${need_pkgs[*]})"
  fi
fi
"$TIME_BIN" -f '%e' -o /dev/null true 2>/dev/null || die "$TIME_BIN is not GNU time (needs -f/-o)"
# (no `| grep -q`: with pipefail, grep exiting early would make ffmpeg's SIGPIPE fail the pipeline)
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)
[[ $encoders == *libx264* ]] || die "ffmpeg lacks libx264"

# ---------------------------------------------------------------- temp dir
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cinegate-bench.XXXXXX")
cleanup() {
  if [[ $KEEP_TMP == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf -- "$TMP"
  fi
}
trap cleanup EXIT

# run_timed NAME CMD...: run CMD under GNU time, append "wall user sys maxrss_kb" to $TMP/NAME.time
# and its stdout+stderr to $TMP/NAME.log. Returns CMD's exit status.
run_timed() {
  local name=$1
  shift
  local tf="$TMP/$name.time.tmp" rc=0
  "$TIME_BIN" -f 'BENCH %e %U %S %M' -o "$tf" "$@" >>"$TMP/$name.log" 2>&1 || rc=$?
  grep '^BENCH ' "$tf" | cut -d' ' -f2- >>"$TMP/$name.time" || true
  rm -f -- "$tf"
  return "$rc"
}

# sum_time NAME -> "wall cpu rss_mb": wall and cpu summed over all runs, RSS the maximum
sum_time() {
  awk '{ w += $1; c += $2 + $3; if ($4 > m) m = $4 }
       END { printf "%.2f %.2f %.1f\n", w, c, m / 1024 }' "$TMP/$1.time"
}

count_ts() { find "$1" -name '*.ts' -type f | wc -l | tr -d ' '; }
dir_mb() { du -sk "$1" | awk '{ printf "%.1f", $1 / 1024 }'; }

show_log_tail() {
  log "last lines of $1.log:"
  tail -n 20 "$TMP/$1.log" >&2 || true
}

# ---------------------------------------------------------------- build cinegate
CINEGATE="$REPO_DIR/target/release/cinegate"
have_c=1
if [[ $SKIP_BUILD != 1 ]]; then
  log "cargo build --release (not timed)"
  if ! (cd "$REPO_DIR" && cargo build --release) >"$TMP/build.log" 2>&1; then
    tail -n 30 "$TMP/build.log" >&2 || true
    if [[ $ALLOW_MISSING_CINEGATE == 1 ]]; then
      log "SKIPPING (c): cargo build --release failed (ALLOW_MISSING_CINEGATE=1)"
      have_c=0
    else
      die "cargo build --release failed (set ALLOW_MISSING_CINEGATE=1 to benchmark only (a) and (b))"
    fi
  fi
fi
if [[ $have_c == 1 && ! -x $CINEGATE ]]; then
  if [[ $ALLOW_MISSING_CINEGATE == 1 ]]; then
    log "SKIPPING (c): $CINEGATE does not exist (ALLOW_MISSING_CINEGATE=1)"
    have_c=0
  else
    die "$CINEGATE does not exist (set ALLOW_MISSING_CINEGATE=1 to benchmark only (a) and (b))"
  fi
fi

# ---------------------------------------------------------------- source
SRC="$TMP/source.mp4"
log "encoding the ${DURATION}s 1080p30 source (not timed)"
ffmpeg -nostdin -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$DURATION" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$DURATION" \
  -map 0:v:0 -map 1:a:0 \
  -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p \
  -c:a aac -b:a 192k -ar 48000 -ac 2 \
  -movflags +faststart "$SRC"
# Warm the page cache so no contender pays for the first read.
cat "$SRC" >/dev/null

# Encoder options shared by (a) and (b), mirroring what cinegate does.
X264_COMMON=(-c:v libx264 -preset "$PRESET" -profile:v high -pix_fmt yuv420p
  -g "$GOP" -sc_threshold 0 -force_key_frames "expr:gte(t,n_forced*$SEG)")
AAC=(-c:a aac -b:a 128k -ar 48000 -ac 2)
HLS=(-f hls -hls_time "$SEG" -hls_playlist_type vod -hls_segment_type mpegts)

# ---------------------------------------------------------------- (a) one ffmpeg per rendition
log "(a) ffmpeg CLI, one process per rendition, sequential"
for r in "${RUNGS[@]}"; do
  read -r name w h kb <<<"$r"
  out="$TMP/a/$name"
  mkdir -p "$out"
  run_timed a ffmpeg -nostdin -hide_banner -loglevel error -y -i "$SRC" \
    -map 0:v:0 -map 0:a:0 \
    -vf "scale=$w:$h:flags=bicubic" \
    "${X264_COMMON[@]}" -b:v "${kb}k" -maxrate "$((kb * 11 / 10))k" -bufsize "$((kb * 2))k" \
    "${AAC[@]}" "${HLS[@]}" \
    -hls_segment_filename "$out/%05d.ts" "$out/index.m3u8" ||
    { show_log_tail a; die "(a) ffmpeg failed for rendition $name"; }
done

# ---------------------------------------------------------------- (b) one ffmpeg, split=4
log "(b) ffmpeg CLI, one process, split=4 -> four encoders"
filter="[0:v:0]split=${#RUNGS[@]}"
for i in "${!RUNGS[@]}"; do filter+="[s$i]"; done
b_maps=()
b_rates=()
vsm=()
for i in "${!RUNGS[@]}"; do
  read -r name w h kb <<<"${RUNGS[$i]}"
  filter+=";[s$i]scale=$w:$h:flags=bicubic[v$i]"
  b_maps+=(-map "[v$i]")
  b_rates+=("-b:v:$i" "${kb}k" "-maxrate:v:$i" "$((kb * 11 / 10))k" "-bufsize:v:$i" "$((kb * 2))k")
  vsm+=("v:$i,a:$i,name:$name")
done
for i in "${!RUNGS[@]}"; do b_maps+=(-map 0:a:0); done
mkdir -p "$TMP/b"
run_timed b ffmpeg -nostdin -hide_banner -loglevel error -y -i "$SRC" \
  -filter_complex "$filter" "${b_maps[@]}" \
  "${X264_COMMON[@]}" "${b_rates[@]}" \
  "${AAC[@]}" "${HLS[@]}" \
  -master_pl_name master.m3u8 -var_stream_map "${vsm[*]}" \
  -hls_segment_filename "$TMP/b/%v/%05d.ts" "$TMP/b/%v/index.m3u8" ||
  { show_log_tail b; die "(b) ffmpeg failed"; }

# ---------------------------------------------------------------- (c) cinegate package
enc_line=""
if [[ $have_c == 1 ]]; then
  log "(c) cinegate package"
  c_rc=0
  run_timed c "$CINEGATE" package "$SRC" --out "$TMP/c" --secret-file "$TMP/film.secret" \
    --ladder "$LADDER" --segment-seconds "$SEG" --preset "$PRESET" --quiet || c_rc=$?
  c_problem=""
  if ((c_rc != 0)); then
    c_problem="cinegate package exited with status $c_rc"
  elif [[ ! -f $TMP/c/manifest.json ]]; then
    c_problem="cinegate package exited 0 but wrote no $TMP/c/manifest.json"
  elif [[ $(count_ts "$TMP/c") -eq 0 ]]; then
    c_problem="cinegate package exited 0 but wrote no segments"
  fi
  if [[ -n $c_problem ]]; then
    show_log_tail c
    if [[ $ALLOW_MISSING_CINEGATE == 1 ]]; then
      log "SKIPPING (c): $c_problem (ALLOW_MISSING_CINEGATE=1)"
      have_c=0
    else
      die "$c_problem"
    fi
  else
    enc_line=$(grep -i 'encryption' "$TMP/c.log" | tail -n 1 || true)
  fi
fi

# ---------------------------------------------------------------- report
read -r a_wall a_cpu a_rss <<<"$(sum_time a)"
read -r b_wall b_cpu b_rss <<<"$(sum_time b)"

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
ffv=$(ffmpeg -hide_banner -version | awk 'NR == 1 { print $3 }')
rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")

echo
echo "### Transcode benchmark"
echo
echo "Source: ${DURATION} s 1920x1080 30 fps testsrc2 + sine, H.264 (ultrafast, crf 18) + AAC mp4."
echo "Ladder ${LADDER}, x264 preset ${PRESET}, ${SEG} s MPEG-TS segments, AAC 128k 48 kHz stereo."
echo "Machine: ${cpu_model:-unknown CPU}, $(nproc) CPUs; ffmpeg ${ffv}; cinegate ${rev}; $(date -u +%Y-%m-%d)."
echo
echo "| contender | wall s | CPU s (user+sys) | peak RSS MB | segments | output MB |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| (a) ffmpeg CLI, 1 process per rendition, sequential | $a_wall | $a_cpu | $a_rss | $(count_ts "$TMP/a") | $(dir_mb "$TMP/a") |"
echo "| (b) ffmpeg CLI, 1 process, split=4 | $b_wall | $b_cpu | $b_rss | $(count_ts "$TMP/b") | $(dir_mb "$TMP/b") |"
if [[ $have_c == 1 ]]; then
  read -r c_wall c_cpu c_rss <<<"$(sum_time c)"
  echo "| (c) cinegate package | $c_wall | $c_cpu | $c_rss | $(count_ts "$TMP/c") | $(dir_mb "$TMP/c") |"
else
  echo "| (c) cinegate package | skipped | skipped | skipped | - | - |"
fi
echo
echo "(a): times summed over its 4 runs, RSS the largest single run. Peak RSS is GNU time's %M"
echo "(the largest process, not a sum over child processes)."
echo

if [[ $have_c == 1 ]]; then
  ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y > 0) printf "%.2f", x / y; else print "inf" }'; }
  verdict() { awk -v x="$1" -v m="$2" 'BEGIN { print ((x != "inf" && x + 0 <= m + 0) ? "PASS" : "FAIL") }'; }
  c_over_a=$(ratio "$c_wall" "$a_wall")
  c_over_b=$(ratio "$c_wall" "$b_wall")
  echo "| target | measured | limit | result |"
  echo "|---|---:|---:|---|"
  echo "| wall c/b | $c_over_b | ≤ $MAX_C_OVER_B | $(verdict "$c_over_b" "$MAX_C_OVER_B") |"
  echo "| wall c/a | $c_over_a | ≤ $MAX_C_OVER_A | $(verdict "$c_over_a" "$MAX_C_OVER_A") |"
  echo "| peak RSS (c) MB | $c_rss | ≤ $MAX_RSS_MB | $(verdict "$c_rss" "$MAX_RSS_MB") |"
  echo
  if [[ -n $enc_line ]]; then
    echo "cinegate summary: $enc_line"
  else
    echo "cinegate printed no summary line mentioning \"encryption\"."
  fi
else
  echo "(c) was skipped, so no ratios: targets are c/b ≤ $MAX_C_OVER_B, c/a ≤ $MAX_C_OVER_A, peak RSS (c) ≤ $MAX_RSS_MB MB."
fi
