#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite; the suite starts its own throwaway PostGIS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --postgis
exec .venv/bin/python -m pytest "$@"  # -m: this checkout's packages come first on sys.path
