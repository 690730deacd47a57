#!/usr/bin/env bash
# `make demo`: the whole loop on this machine with builtin:tiny (no cluster, no GPU).
# 1. initial setup: two tasks x five language adapters, each task's combined baseline (COMB),
#    four merged models, evaluation with intervals. `sentiment`'s languages share structure;
#    `sentiment-isolated` (the negative control) shares nothing, and its merge must be gated;
# 2. nothing changed: nothing reruns;
# 3. an update: new German data for `sentiment` (one manifest edited): only German retrains,
#    the task's models re-merge, and the report compares that with retraining COMB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=${LANGMERGE_DEMO_DIR:-.langmerge-demo}
rm -rf "$work"
mkdir -p "$work"
cp -r examples/quickstart "$work/manifests"
langmerge=.venv/bin/langmerge

echo "== 1/3 initial setup: langmerge up -f $work/manifests"
"$langmerge" up -f "$work/manifests" --state-dir "$work/state" --compare-combined > "$work/initial.txt"
cat "$work/initial.txt"

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
.venv/bin/python hack/thesis_check.py "$work/state/report.json"
echo
echo "report: $work/state/report.md and $work/state/report.json"
