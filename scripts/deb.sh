#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (`make deb`). The unit installed is
# systemd/cinegate.service with its ExecStart moved from /usr/local/bin (a hand install)
# to /usr/bin (the package's binary): one unit source, adjusted here, not a second copy.
# Arguments go to `cargo deb`; tests/server/install.rs passes `--no-build --profile dev --no-strip
# --output DIR` to package the debug binary it already has (a release build takes ~6.5 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p target/debian-unit
# The packaged unit: ExecStart at /usr/bin, and the hand-install notes replaced by one line.
sed -e 's#^ExecStart=/usr/local/bin/cinegate #ExecStart=/usr/bin/cinegate #' \
    -e '1,/^\[Unit\]/{/^#/d}' systemd/cinegate.service \
  | sed '1i # Installed by the cinegate Debian package; override with `systemctl edit cinegate`.' \
  > target/debian-unit/cinegate.service.tmp
grep -q '^ExecStart=/usr/bin/cinegate ' target/debian-unit/cinegate.service.tmp \
  || { echo "scripts/deb.sh: no ExecStart=/usr/local/bin/cinegate line in systemd/cinegate.service to adjust" >&2; exit 1; }
mv target/debian-unit/cinegate.service.tmp target/debian-unit/cinegate.service

# --strip: the release profile keeps line tables for backtraces, and cargo-deb 3.8 then
# leaves the binary unstripped (144 MB installed; lintian: E unstripped-binary-or-object).
# Stripped, the package is 7 MB, installs 28 MB, and lintian is clean.
exec cargo deb --strip "$@"
