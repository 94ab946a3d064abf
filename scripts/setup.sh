#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, reusing caches:
# a virtualenv in .venv (pip's cache under ~/.cache/pip), the Kafka jars from Maven
# Central, Debian's PostgreSQL 15 with the DocumentDB extension built from pinned
# sources and FerretDB 2 built with Go (all under ~/.cache/medcard), Debian's chromium
# for the browser test, and the AsyncAPI 3.0.0 JSON Schema (npm registry).
# Needs python3 (3.11+), java 17+, mvn and go; says which is missing. Debian packages
# are installed with apt-get when run as root (else their names are printed).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in python3 java mvn go; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup: '$tool' is required but not installed" >&2; exit 1; }
done

# Headless Chromium from Debian for the web console's browser test (Playwright drives it;
# `playwright install` is never run: it would download a browser of its own).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Debian's chromium is needed for the browser test: sudo apt-get install chromium" >&2; exit 1
  fi
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
.venv/bin/medcard stack install
# The official AsyncAPI 3.0.0 JSON Schema the contract test validates against (npm, cached).
.venv/bin/python -m tests.asyncapi_spec >/dev/null
# The Compose Specification's JSON Schema docker-compose.yml is checked against (Go module proxy, cached).
.venv/bin/python -m tests.compose_spec >/dev/null
