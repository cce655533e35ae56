#!/bin/sh
# install-deps.sh - install the Debian (bookworm) packages wahagate needs to
# build, test, run the demo and the benchmark (prometheus: its promtool
# checks our /metrics in the tests, its service is not used; redis-server:
# the fleet tests start their own; chromium: the
# browser tests drive it; nginx-light: test_compat_nginx.py runs
# packaging/nginx/wahagate.conf in front of the gateway). Idempotent: installs only what
# is missing, and does nothing (not even apt-get update) when all is there.
# Run as root, or as a user with sudo.
#
#   scripts/install-deps.sh [--demo] [--quiet] [--fuzz]
#
# --demo installs only what building and running the demo needs (make demo:
# the build group below), not the test tools.
# --fuzz adds clang and its fuzzer runtime, for `make fuzz`.
set -eu

# Build and run (make, make demo): the compiler and the C library's headers
# (gcc only recommends libc6-dev, and recommends are not installed), the
# libraries the build links (the Makefile's PKGS and -lhttp_parser), python3
# (it embeds the assets at build time and runs the WAHA simulator), curl
# (demo.sh waits with it until the gateway answers).
BUILD_PACKAGES="
  gcc libc6-dev make pkg-config
  libevent-dev libcurl4-openssl-dev libjson-c-dev libinih-dev libssl-dev
  libhttp-parser-dev libsystemd-dev libhiredis-dev libwslay-dev
  python3 curl
"

# Tests, benchmark and package (make test, bench, soak, deb).
TEST_PACKAGES="
  redis-server nginx-light
  libcmocka-dev
  python3-pytest
  wrk procps
  prometheus
  chromium
  debhelper dpkg-dev lintian systemd adduser
"

quiet=false
demo=false
fuzz=""
for arg in "$@"; do
    case "$arg" in
    --quiet) quiet=true ;;
    --demo) demo=true ;;
    --fuzz) fuzz="clang-14 libclang-rt-14-dev" ;; # make fuzz: libFuzzer
    *) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
    esac
done

if $demo; then
    PACKAGES="$BUILD_PACKAGES $fuzz"
else
    PACKAGES="$BUILD_PACKAGES $TEST_PACKAGES $fuzz"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# The browser tests need Node.js >= 20 and npm (the machines have them; a
# Debian-only machine gets Debian's, which the tests will report too old).
if ! $demo && { ! command -v node > /dev/null || ! command -v npm > /dev/null; }; then
    missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
    $quiet || echo "install-deps: everything is installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-deps: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
