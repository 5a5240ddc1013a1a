#!/usr/bin/env bash
# Installs what building, running and testing Vector Flow needs on a fresh Debian 12 machine.
# Idempotent: only missing packages are installed. Needs root (or sudo) for apt-get.
set -euo pipefail
APT_PACKAGES=(
  pkg-config libopencv-dev libavutil-dev libswscale-dev libhiredis-dev libpq-dev libcurl4-openssl-dev   # build
  postgresql redis-server prometheus                                        # local platform
  ffmpeg python3-opencv python3-venv wrk nginx-light curl docker-compose docker.io docker-registry chromium chromium-driver   # tests and benchmarks
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi   # RTSP test server
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Swagger UI and ReDoc for the API's /docs and /redoc: files only, from PyPI's drf-spectacular-sidecar
# (--no-deps: its Django is not needed), into .vf/docs-assets, the API's default VF_DOCS_ASSETS_DIR.
DOCS_PKG=drf-spectacular-sidecar; DOCS_VER=2026.10.1; DOCS_DIR="$(cd "$(dirname "$0")/.." && pwd)/.vf/docs-assets"
if [ ! -d "$DOCS_DIR/${DOCS_PKG//-/_}-$DOCS_VER.dist-info" ] && ! python3 -m pip install -q --disable-pip-version-check \
    --no-deps --upgrade --target "$DOCS_DIR" "$DOCS_PKG==$DOCS_VER" >/dev/null 2>&1; then
  echo "note: $DOCS_PKG not installed (pip failed); /docs and /redoc serve the built-in page" >&2
fi
if ! command -v swift >/dev/null; then
  echo "swift not found: install Swift 6 (https://swift.org/install) and put it on PATH" >&2; exit 1
fi
if [ "${1:-}" = "--test" ]; then
  PY=python3
  $PY -m pip --version >/dev/null 2>&1 || { $SUDO apt-get install -y -qq python3-pip >/dev/null; }
  echo "==> installing Python test tools"
  $PY -m pip install -q --disable-pip-version-check pytest requests websockets schemathesis openapi-spec-validator selenium pyyaml pytest-timeout 2>&1 | grep -v "Running pip as the 'root'" || true
fi
