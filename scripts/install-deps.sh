#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test cinegate:
# FFmpeg 5.1's -dev libraries (ffmpeg-next links them), clang/libclang (bindgen),
# pkg-config, the ffmpeg CLI and openssl (independent judges in tests), Debian's pebble ACME
# test CA (the HTTPS tests), nginx (the benchmarks' reference and the storage tests' "CDN" in
# front of Garage, which is built with cargo below), a Korean font (the
# viewer app's Korean pages in the browser tests' screenshots), and the Python
# test peers (m3u8 playlist parser, tuspy tus client, aiosmtpd SMTP server), the npm test
# peers and vendored browser libraries, and Debian's chromium for the browser tests.
# Idempotent and quiet when everything is present.
#
#   install-deps.sh          everything `make test` needs
#   install-deps.sh --demo   what `make demo` needs: the same minus the tools built from
#                            source for tests and packaging only (cargo-deb, cargo-fuzz,
#                            Garage: ~14 minutes of compiling on 2 cores a demo never uses)
set -euo pipefail
demo=false
[ "${1:-}" = "--demo" ] && demo=true

packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev
  ffmpeg openssl
  fonts-nanum
  systemd lintian dpkg-dev
  pebble
  nginx
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

# Independent test peers from PyPI: an HLS playlist parser, a tus client and an SMTP
# server (aiosmtpd, the notification tests' mail sink), an OpenAPI validator
# (openapi-spec-validator), an SDK generator (openapi-python-client), schemathesis and
# prometheus-client (its OpenMetrics parser judges /metrics) and awscli (the S3 client of the
# Garage storage tests), pinned in requirements.txt.
if ! python3 -c "import m3u8, tusclient, aiosmtpd, openapi_spec_validator, openapi_python_client, schemathesis, prometheus_client, awscli" >/dev/null 2>&1 \
  || ! command -v aws >/dev/null; then
  echo "installing python test peers: m3u8 tuspy aiosmtpd openapi-spec-validator openapi-python-client schemathesis prometheus-client awscli"
  python3 -m pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
fi

# The npm side: the OIDC provider test peer (oauth2-mock-server + jose), the Chromium test
# peer (playwright-core) and the admin console's vendored browser libraries (web/), each
# pinned by its package-lock.json and installed when node_modules is missing or older.
npm_dirs=(tests/peers/oidc tests/peers/browser web)
need_npm=0
for d in "${npm_dirs[@]}"; do
  if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then need_npm=1; fi
done
if [ "$need_npm" -eq 1 ]; then
  if ! command -v npm >/dev/null; then
    echo "installing: nodejs npm"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install nodejs npm" >&2; exit 1; }
      sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  # oauth2-mock-server 8 declares node ^20.19; Debian 12's own nodejs is 18.
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || echo "warning: node $(node --version) is older than the 20.19 oauth2-mock-server wants (NodeSource has node 20)" >&2
  for d in "${npm_dirs[@]}"; do
    if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
      echo "installing npm packages (npm ci in $d)"
      (cd "$d" && npm ci --silent --no-audit --no-fund)
      touch "$d/node_modules"
    fi
  done
fi

# The browser the Chromium test peer drives (Debian's build plays H.264/AAC HLS).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing: chromium"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install chromium" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if $demo; then
  exit 0
fi

# cargo-deb for `make deb` and the package test (tests/server/install.rs); dpkg-dev above
# brings dpkg-shlibdeps (its `$auto` Depends), lintian judges the package and systemd's
# systemd-analyze scores the unit (offline: no running systemd needed). Building cargo-deb
# took 4 min 33 s of wall time on the shared 2-core machine (once per fresh machine).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing: cargo-deb"
  cargo install cargo-deb --version 3.8.0 --locked --quiet
fi

# cargo-fuzz for `make fuzz` (fuzz/), only where a nightly toolchain is installed beside
# stable: cargo-fuzz itself builds on stable, but its targets need nightly's sanitizers.
if cargo +nightly --version >/dev/null 2>&1 && ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing: cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi

# Garage, the distributed S3-compatible store the storage tests run as a 3-node cluster
# (tests/server/harness/garage.rs). No Debian, PyPI or npm package ships it, so it is built
# from crates.io into a cache outside the work tree (the harness looks there first). Building
# it took 521 s of wall time on 2 cores (once per fresh machine); the binary is 54 MB.
garage_root="$HOME/.cache/cinegate/garage"
# (A variable, not a pipe into grep -q: under pipefail an early-closing grep could fail it.)
garage_version="$("$garage_root/bin/garage" --version 2>/dev/null || true)"
case "$garage_version" in
  *:2.5.0\ *) ;;
  *)
    echo "installing: garage 2.5.0 (cargo install, about 9 minutes on 2 cores)"
    cargo install garage --version 2.5.0 --locked --quiet --root "$garage_root"
    ;;
esac
