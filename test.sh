#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite against a real
# Kafka broker and a real MongoDB-wire server (started by the tests themselves).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
