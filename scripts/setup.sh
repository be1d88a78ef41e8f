#!/usr/bin/env bash
# Install what gridmap needs on a fresh Debian/Ubuntu machine; safe to run again.
#   scripts/setup.sh              Debian packages for SpatiaLite and the posters' CJK font
#                                 (fonts-noto-cjk) + a .venv with gridmap
#   scripts/setup.sh --postgis    ... and PostgreSQL with the matching PostGIS and Chromium
#                                 (for the tests; Playwright drives Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

want=()
installed libsqlite3-mod-spatialite || want+=(libsqlite3-mod-spatialite)
installed fonts-noto-cjk || want+=(fonts-noto-cjk)
command -v python3 >/dev/null || want+=(python3)
python3 -c "import venv, ensurepip" 2>/dev/null || want+=(python3-venv)
if [ "${1:-}" = "--postgis" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
  command -v chromium >/dev/null || want+=(chromium)
fi
[ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"

if [ "${1:-}" = "--postgis" ]; then
  pg=$(ls /usr/lib/postgresql | sort -n | tail -1)
  installed "postgresql-${pg}-postgis-3" || apt_install "postgresql-${pg}-postgis-3"
fi

# The Python environment, reinstalled when pyproject.toml changes.
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -e "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
