#!/usr/bin/env bash
# `make demo`: the whole loop on this machine with builtin:tiny (no cluster, no GPU).
# 1. initial setup: five language adapters + the combined baseline, two merged models, evaluation;
# 2. an update: new German data (one manifest edited), so only German retrains and both re-merge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=${LANGMERGE_DEMO_DIR:-.langmerge-demo}
rm -rf "$work"
mkdir -p "$work"
cp -r examples/quickstart "$work/manifests"
langmerge=.venv/bin/langmerge

echo "== 1/3 initial setup: langmerge up -f $work/manifests"
"$langmerge" up -f "$work/manifests" --state-dir "$work/state" --compare-combined

echo
echo "== 2/3 nothing changed: langmerge up again retrains nothing"
"$langmerge" up -f "$work/manifests" --state-dir "$work/state" --compare-combined > "$work/second-run.txt"
sed -n 1p "$work/second-run.txt"

echo
echo "== 3/3 update one language: new German data (dataset.uri and dataset.revision of sentiment-de)"
sed -i 's#de-train.jsonl#de-train-v2.jsonl#; s#revision: v1#revision: v2#' "$work/manifests/sentiment-de.yaml"
"$langmerge" up -f "$work/manifests" --state-dir "$work/state" --compare-combined

echo
"$langmerge" status --state-dir "$work/state"
echo
echo "report: $work/state/report.md"
