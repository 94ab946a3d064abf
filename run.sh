#!/usr/bin/env bash
# The main job: installs what is missing, starts the local stack (real Kafka + FerretDB)
# if it is not running, then simulates months of the card ecosystem through the four
# services (started as real processes) and writes a verified report (report.json).
# Extra arguments go to `medcard simulate` (e.g. --persons 1000 --months 12 --seed 3).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/medcard simulate "$@"
