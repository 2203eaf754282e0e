#!/usr/bin/env bash
# Quick start: install what is needed, then start the chat app (the index is built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
QA_SKIP_BROWSER=1 bash scripts/install.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec "${PYTHON:-python3}" -m qa.cli serve "$@"
