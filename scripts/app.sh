#!/usr/bin/env bash
# Quick start: install qa's run-time dependencies, then start the chat app (the index is built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec "${PYTHON:-python3}" -m qa.cli serve "$@"
