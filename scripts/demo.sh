#!/usr/bin/env bash
# `make demo`: generates a 30-second sample film (colour bars and a tone) on first run,
# packages it into encrypted HLS with its keys exported, and prints how to play it.
set -euo pipefail
dir=${1:-media/demo}
bin=./target/release/cinegate
mkdir -p "$dir"
src="$dir/sample.mp4"
if [ ! -f "$src" ]; then
  echo "generating a sample film: $src"
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 30 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$src"
fi
rm -rf "$dir/package"
"$bin" probe "$src"
"$bin" package "$src" --out "$dir/package" --secret-file "$dir/film.secret" --export-keys
cat <<MSG

Done. The encrypted package is in $dir/package (per-segment AES-128 keys in keys/).
  play it:     ffplay -allowed_extensions ALL $dir/package/master.m3u8
  decode it:   ffmpeg -allowed_extensions ALL -i $dir/package/master.m3u8 -f null -
  look at it:  $dir/package/poster.jpg, $dir/package/manifest.json
MSG
