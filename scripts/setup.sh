#!/usr/bin/env bash
# Install what gridmap needs on a fresh Debian/Ubuntu machine; safe to run again.
#   scripts/setup.sh              Debian packages for SpatiaLite and the posters' CJK font
#                                 (fonts-noto-cjk) + a .venv with gridmap
#   scripts/setup.sh --postgis    ... and PostgreSQL with the matching PostGIS and Chromium
#                                 (for the tests; Playwright drives Debian's chromium)
# Debian 12, Ubuntu 22.04 (its python3 is 3.10: python3.11 is installed) and 24.04, on
# x86_64 or aarch64; Python packages pinned by constraints.txt (refresh:
# .venv/bin/python scripts/installs.py lock). The venv is made with the system's Python,
# whose sqlite3 loads SpatiaLite where pysqlite3-binary has no wheel (aarch64).
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
py=python3
if command -v python3 >/dev/null && ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'
then py=python3.11; fi   # Ubuntu 22.04: python3 is 3.10, python3.11 is a package
command -v "$py" >/dev/null || want+=("$py")
"$py" -c "import venv, ensurepip" 2>/dev/null || want+=("$py-venv")
if [ "${1:-}" = "--postgis" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
  command -v chromium >/dev/null || want+=(chromium)
fi
[ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"

if [ "${1:-}" = "--postgis" ]; then
  pg=$(ls /usr/lib/postgresql | sort -n | tail -1)
  installed "postgresql-${pg}-postgis-3" || apt_install "postgresql-${pg}-postgis-3"
fi

# The Python environment, reinstalled when pyproject.toml or constraints.txt changes.
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
if [ ! -e "$stamp" ]; then
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
