#!/usr/bin/env bash
# Set-up on a fresh machine: checks Python 3.11 and Java 17, creates .venv, installs pinned packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required (Glue 5.0), found {sys.version.split()[0]}"'
if ! command -v java >/dev/null; then
  echo "Java 17 is required by PyFlink and PySpark; installing openjdk-17-jre-headless" >&2
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "error: install Java 17 (for example: sudo apt-get install openjdk-17-jre-headless)" >&2; exit 1
  fi
fi
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]}')
[ "$java_major" = 17 ] || echo "warning: Java $java_major found; Flink 2.3 and Spark 3.5 are tested here on Java 17" >&2
# Headless Chromium for the dashboard's browser test (Debian's package; no browser download at run time).
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser test" >&2
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: no chromium; the browser test will be skipped (sudo apt-get install chromium)" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
echo "set-up done: .venv ready (activate with: source .venv/bin/activate)"
