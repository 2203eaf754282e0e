#!/usr/bin/env bash
# The whole test suite, slow and browser tests included, plus the linter; installs the [dev] extras first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"${PYTHON:-python3}" -m ruff check qa ui tests scripts
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests "$@"
