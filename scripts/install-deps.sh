#!/bin/sh
# install-deps.sh - install the Debian (bookworm) packages wahagate needs to
# build, test, run the demo and the benchmark (prometheus: its promtool
# checks our /metrics in the tests, its service is not used; redis-server:
# the fleet tests start their own; chromium: the
# browser tests drive it). Idempotent: installs only what
# is missing, and does nothing (not even apt-get update) when all is there.
# Run as root, or as a user with sudo.
#
#   scripts/install-deps.sh [--quiet] [--fuzz]
#
# --fuzz adds clang and its fuzzer runtime, for `make fuzz`.
set -eu

PACKAGES="
  gcc make pkg-config
  libevent-dev libcurl4-openssl-dev libjson-c-dev libinih-dev libssl-dev libwslay-dev
  libhttp-parser-dev libsystemd-dev libhiredis-dev redis-server
  libcmocka-dev
  python3 python3-pytest
  curl wrk procps
  prometheus
  chromium
  debhelper dpkg-dev lintian systemd adduser
"

quiet=false
for arg in "$@"; do
    case "$arg" in
    --quiet) quiet=true ;;
    --fuzz) PACKAGES="$PACKAGES clang-14 libclang-rt-14-dev" ;; # make fuzz: libFuzzer
    esac
done

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# The browser tests need Node.js >= 20 and npm (the machines have them; a
# Debian-only machine gets Debian's, which the tests will report too old).
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
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
