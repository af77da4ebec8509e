#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, from its seed
# corpus (fuzz/corpus/<target>). `make fuzz` runs it; `make test` runs it with
# FUZZ_SECONDS=30 and --if-available, which skips (saying so) on a machine without a
# nightly toolchain or cargo-fuzz. A crash stops the run: libFuzzer prints the input and
# leaves it in fuzz/artifacts/<target>/ (see docs/FUZZING.md for what to do with it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
# Build flags for cargo fuzz, the same for the build and every run (a run with other flags
# rebuilds). `make fuzz` leaves them empty: release with AddressSanitizer, for long runs.
# `make test` passes `--dev --sanitizer none`: its 30-second runs are a smoke test whose
# cost is the first build, and a debug build without ASan compiles several times faster
# while still stopping on a panic, an overflow or a failed assertion (safe Rust needs
# ASan only for its unsafe dependencies, which the long runs cover).
read -r -a flags <<<"${FUZZ_BUILD_FLAGS:-}"
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  if [ "${1:-}" = "--if-available" ]; then
    echo "fuzz: SKIPPED — needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked)"
    exit 0
  fi
  echo "fuzz: needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  exit 1
fi

# One build of every target first (everything is compiled with sanitizer flags, so the
# first one is slow), then each run finds its binary ready.
start=$(date +%s)
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: targets built in $(($(date +%s) - start)) s"

for target in $(cargo +nightly fuzz list); do
  echo "fuzz: $target for ${seconds} s"
  # A run writes what it finds into the corpus directory; only the seed-* files are committed.
  cargo +nightly fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: every target ran ${seconds} s without a crash"
