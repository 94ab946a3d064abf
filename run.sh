#!/usr/bin/env bash
# The main job: installs what is missing, starts the local stack (real Kafka + FerretDB)
# and the four services, and runs the simulation. Extra arguments go to `medcard simulate`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/medcard up "$@"
