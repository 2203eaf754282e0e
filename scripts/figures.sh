#!/usr/bin/env bash
# Re-measure every figure the README quotes: each command writes its report into docs/ (Markdown, a
# JSON copy, plots), then `qa report` rewrites the README's figures table from those copies. Run the
# steps one at a time on an otherwise idle machine (about 30 minutes on 2 cores, and the postgres step
# about 10 more: it writes 100,000 passages); the bench and postgres steps start a throwaway PostgreSQL.
# Name steps to run only those: bash scripts/figures.sh load
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DATA=../shared/data
mkdir -p build docs
VAL=build/squad-v1-validation.json
VAL2=build/squad-v2-validation.json
[ -f "$VAL" ] || python -m qa.lab.train --write-validation "$VAL"
[ -f "$VAL2" ] || python -m qa.lab.train --write-validation "$VAL2" --squad2
CANARD=build/canard-validation.json  # the rewriter's held-out conversations (qa.lab.train_rewriter)
[ -f "$CANARD" ] || python -m qa.lab.train_rewriter "$DATA/conversations/canard-dev.json" \
  --write-validation "$CANARD" --split-only
[ -f build/followups/squad-followups.json ] || python scripts/make_conversations.py build/followups

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(article conversations followups canard squad1 squad2 calibration bench load hostile readers formats postgres install)
for step in "${steps[@]}"; do
  echo "== $step" >&2
  case "$step" in
    article) qa eval "$DATA/article_dev.json" --report docs/eval-article.md ;;
    conversations) qa eval "$DATA/article_conversations_dev.json" --report docs/eval-conversations.md ;;
    followups) qa eval build/followups/squad-followups.json --report docs/eval-followups.md ;;
    canard) qa eval "$CANARD" --report docs/eval-canard.md ;;
    squad1) qa eval "$VAL" --reader-only --report docs/eval-squad-v1.md ;;
    squad2) qa eval "$VAL2" --reader-only --report docs/eval-squad-v2.md ;;
    calibration) qa eval "$VAL2" --calibration 1527 --report docs/calibration.md ;;
    bench) python scripts/with_postgres.py qa bench --sizes 1k,10k --recall --database '{url}' \
             --open-domain 200 --report docs/benchmarks.md ;;
    load) python scripts/load_check.py --report docs/load.md ;;
    hostile) python scripts/hostile_check.py --hostile 4 --report docs/load-hostile.md ;;
    readers) qa compare-readers --questions 300 --validation "$VAL" --threads 1 --report docs/readers.md ;;
    formats) python scripts/format_check.py --report docs/formats.md ;;
    postgres) python scripts/pg_scale_check.py --report docs/postgres.md ;;
    install) python scripts/install_check.py --report docs/install.md ;;
    *) echo "unknown step $step (article conversations followups canard squad1 squad2 calibration bench load hostile readers formats" \
            "postgres install)" >&2
       exit 2 ;;
  esac
done
qa report --readme README.md
qa report --readme qa/reader_model/README.md docs/eval-squad-v1.json docs/eval-squad-v2.json \
  docs/calibration.json docs/eval-article.json
