#!/usr/bin/env bash
# Install qa into $PYTHON (default python3): torch==2.13.0 first, the CPU build (an unpinned torch would
# pull a multi-GB CUDA build), then the project (editable) with its run-time dependencies. With --dev, the
# [dev] extras too (tests, linter, PostgreSQL, Haystack) and Debian's chromium for the browser test.
# Quick when nothing changed: a stamp of pyproject.toml in the environment says it was done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute, not resolved
extras="" && [ "${1:-}" = "--dev" ] && extras="[dev]"
prefix=$("$PY" -c 'import sys; print(sys.prefix)')
stamp="$prefix/.qa-install-$(sha256sum pyproject.toml | cut -c1-16)"
here=$(pwd)
# this checkout's qa installed with these dependencies ("$stamp-dev" covers both)?
if { [ -f "$stamp-dev" ] || { [ -z "$extras" ] && [ -f "$stamp" ]; }; } \
   && (cd / && "$PY" -c 'import os, sys, qa; sys.exit(os.path.dirname(os.path.dirname(qa.__file__)) != sys.argv[1])' "$here") 2>/dev/null; then
  :
else
  echo "install.sh: installing qa$extras and its dependencies into $prefix (a minute or a few on first use)…" >&2
  start=$(date +%s)
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q -e ".$extras" "torch==2.13.0"
  rm -f "$prefix"/.qa-install-*
  touch "$stamp${extras:+-dev}"
  echo "install.sh: installed in $(( $(date +%s) - start )) s" >&2
fi
if [ -n "$extras" ] && [ "${QA_SKIP_BROWSER:-}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "install.sh: chromium is missing; install Debian's chromium for the browser test" >&2
  fi
fi
