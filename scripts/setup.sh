#!/usr/bin/env bash
# Set-up on a fresh machine: checks Python 3.11 and a Java 17 JDK, creates .venv, installs pinned packages,
# builds the Flink job's own operators (flink_jobs/java, with javac; nothing is downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required (Glue 5.0), found {sys.version.split()[0]}"'
if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
  echo "A Java 17 JDK is required (PyFlink and PySpark run on it; javac builds the Flink job's operators);" \
    "installing openjdk-17-jdk-headless" >&2
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
  else
    echo "error: install a Java 17 JDK (for example: sudo apt-get install openjdk-17-jdk-headless)" >&2; exit 1
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
echo "Flink job operators: $(.venv/bin/python -m flink_jobs.jars)"
echo "set-up done: .venv ready (activate with: source .venv/bin/activate)"
