#!/usr/bin/env bash
# `make research`: the research in miniature on a real multilingual LLM (Gemma 3 270M), with
# `langmerge up` on this machine: three tasks x five languages (examples/research/),
# BASE / INDV / COMB / three merges per task, then the update of one language (new German
# data in every task: only German retrains, every merged model re-merges).
# LANGMERGE_RESEARCH_EVAL_LIMIT=N scores the first N held-out examples per language (a
# quick look with wider intervals); unset, all of them (200 / 200 / 100).
# LANGMERGE_RESEARCH_TASKS=sentiment,summarisation runs those tasks only; unset, all three.
# LANGMERGE_RESEARCH_EPOCHS=N trains every adapter and COMB for N epochs (the manifests:
# sentiment 3, the others 1).
# LANGMERGE_RESEARCH_PRECISION=bf16 trains (the frozen base in bf16, the adapters in float32)
# and scores (spec.evaluation.precision) in bf16, fp32 in fp32, as the manifests say (exact);
# unset or auto: bf16 where the CPU has AVX512-BF16 or AMX-BF16 instructions, else fp32.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=${LANGMERGE_RESEARCH_DIR:-.langmerge-research}
limit=${LANGMERGE_RESEARCH_EVAL_LIMIT:-}
tasks=${LANGMERGE_RESEARCH_TASKS:-}
epochs=${LANGMERGE_RESEARCH_EPOCHS:-}
precision=${LANGMERGE_RESEARCH_PRECISION:-auto}
if [[ "$precision" == auto ]]; then
  precision=fp32
  if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then precision=bf16; fi
fi
if [[ "$precision" != fp32 && "$precision" != bf16 ]]; then
  echo "LANGMERGE_RESEARCH_PRECISION=$precision: give fp32, bf16 or auto" >&2
  exit 2
fi
known=$(cd examples/research && ls ./*-merged.yaml | sed 's#^./##; s#-merged.yaml$##' | tr '\n' ' ')
for task in ${tasks//,/ }; do
  if [[ " $known" != *" $task "* ]]; then
    echo "LANGMERGE_RESEARCH_TASKS: no task '$task' in examples/research (tasks: $known)" >&2
    exit 2
  fi
done
if [[ -n "$epochs" && ! "$epochs" =~ ^[1-9][0-9]*$ ]]; then
  echo "LANGMERGE_RESEARCH_EPOCHS=$epochs: give a whole number of epochs, 1 or more" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
cp -r examples/research "$work/manifests"
if [[ -n "$tasks" ]]; then
  for manifest in "$work"/manifests/*.yaml; do
    name=$(basename "$manifest")
    [[ ",$tasks," == *",${name%%-*},"* ]] || rm "$manifest"
  done
fi
if [[ -n "$epochs" ]]; then
  sed -i "s/^    epochs: [0-9]*$/    epochs: $epochs/" "$work"/manifests/*.yaml
fi
if [[ "$precision" == bf16 ]]; then  # the adapters' and COMB's training, every scoring
  sed -i 's/^    precision: fp32$/    precision: bf16/' "$work"/manifests/*.yaml
  sed -i 's/^  evaluation:$/  evaluation:\n    precision: bf16/' "$work"/manifests/*-merged.yaml
fi
langmerge=.venv/bin/langmerge
flags=(--state-dir "$work/state" --compare-combined ${limit:+--eval-limit "$limit"})

echo "== 1/2 initial setup: langmerge up -f $work/manifests ($precision)${limit:+ (eval limit $limit)}${tasks:+ (tasks $tasks)}${epochs:+ ($epochs epochs)}"
start=$SECONDS
"$langmerge" up -f "$work/manifests" "${flags[@]}" > "$work/initial.txt"
echo "initial setup: $((SECONDS - start)) s"
echo
echo "== 2/2 update one language: new German data in every task (dataset.uri and revision)"
sed -i 's#de-train.jsonl#de-train-v2.jsonl#; s#revision: v1#revision: v2#' "$work"/manifests/*-de.yaml
start=$SECONDS
"$langmerge" up -f "$work/manifests" "${flags[@]}" > "$work/update.txt"
echo "update: $((SECONDS - start)) s"
echo
.venv/bin/python hack/research_report.py "$work/state"
echo
echo "report: $work/state/report.md, report.json, research.md, figures/*.png"
