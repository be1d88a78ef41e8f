#!/usr/bin/env bash
# Set up (if needed) and run the demo on the embedded SpatiaLite database: no server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/gridmap demo "$@"
