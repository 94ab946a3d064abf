#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, reusing caches:
# a virtualenv in .venv (pip's cache under ~/.cache/pip), the Kafka jars from Maven
# Central and the patched FerretDB build (both under ~/.cache/medcard).
# Needs python3 (3.11+), java 17+, mvn and go; says which is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in python3 java mvn go; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup: '$tool' is required but not installed" >&2; exit 1; }
done

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
.venv/bin/medcard stack install
