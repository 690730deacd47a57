"""Scoring in bf16 against fp32: the evaluator's whole path (`evaluate.score_models`: the
model's load, then every language's records) for each of the research's three tasks, both
precisions in the same process and interleaved, 3 repeats, medians; and how far bf16's
scores are from fp32's (the share of predictions that agree, the largest difference of the
task's metric in any language).

On the research quickstart's held-out data (examples/research), the first N records of each
of five languages (N/4 for summarisation), on the base model alone or with a task's LoRA
adapter (--adapter TASK=FOLDER, for example one trained by `langmerge-train` on the task's
training data).

    python benchmarks/precision_bench.py [--quick] [--model builtin:gemma-3-270m]
        [--tasks sentiment,reasoning,summarisation] [--adapter TASK=LORA_FOLDER ...]

Ends with RESULT name=value lines and writes benchmarks/results/precision_bench[_quick].json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1] / "examples" / "research" / "datasets"
LANGUAGES = ("en", "de", "fr", "ja", "zh")
METRIC = {"sentiment": "f1", "reasoning": "accuracy", "summarisation": "rougeL"}


def _datasets(task: str, per_language: int) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for language in LANGUAGES:
        lines = (DATA / task / f"{language}-eval.jsonl").read_text("utf-8").splitlines()
        out[language] = [json.loads(line) for line in lines[:per_language]]
    return out


def _agreement(exact: Any, rounded: Any, task: str) -> dict[str, float]:
    """Shares of agreeing predictions (labels, or summaries' per-example ROUGE-L) and the
    largest difference of the task's metric in one language."""
    same = total = 0
    worst = 0.0
    for language, scored in exact.items():
        other = rounded[language]
        if task == "summarisation":
            pairs = list(zip(scored.values["rougeL"], other.values["rougeL"], strict=True))
        else:
            pairs = list(zip(scored.predicted, other.predicted, strict=True))
        same += sum(a == b for a, b in pairs)
        total += len(pairs)
        metric = METRIC[task]
        worst = max(worst, abs(scored.metrics[metric] - other.metrics[metric]))
    return {"agreeing": same / max(total, 1), "largestMetricDifference": worst}


def bench(
    model_name: str,
    tasks: list[str],
    per_language: int,
    repeats: int,
    adapters: dict[str, Path],
) -> dict[str, Any]:
    from langmerge.common import models
    from langmerge.merger import evaluate

    base = models.resolve(model_name, Path(tempfile.mkdtemp()))
    first = {"en": _datasets(tasks[0], 1)["en"]}
    for precision in ("fp32", "bf16"):  # the libraries' first-call set-up, timed for neither
        evaluate.score_models(base, {"model": None}, first, precision=precision)
    out: dict[str, Any] = {}
    for task in tasks:
        datasets = _datasets(task, per_language // 4 if task == "summarisation" else per_language)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        scored: dict[str, Any] = {}
        for _ in range(repeats):  # interleaved: a busy spell hits both precisions
            for precision, runs in times.items():
                started = time.perf_counter()
                scored[precision] = evaluate.score_models(
                    base,
                    {"model": adapters.get(task)},
                    datasets,
                    generation=task == "summarisation",
                    precision=precision,
                )["model"]
                runs.append(time.perf_counter() - started)
        medians = {k: statistics.median(v) for k, v in times.items()}
        out[task] = {
            "records": sum(len(r) for r in datasets.values()),
            "adapter": str(adapters[task]) if task in adapters else None,
            "seconds": {k: {"median": medians[k], "runs": v} for k, v in times.items()},
            "speedup": medians["fp32"] / medians["bf16"],
            **_agreement(scored["fp32"], scored["bf16"], task),
            "metric": METRIC[task],
            "fp32": {lang: s.metrics[METRIC[task]] for lang, s in scored["fp32"].items()},
            "bf16": {lang: s.metrics[METRIC[task]] for lang, s in scored["bf16"].items()},
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="8 records per language, 1 run")
    parser.add_argument("--model", default="builtin:gemma-3-270m")
    parser.add_argument("--tasks", default=",".join(METRIC))
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="TASK=FOLDER",
        help="a LoRA adapter of --model to score on TASK (repeat; default: the base model)",
    )
    args = parser.parse_args()
    per_language, repeats = (8, 1) if args.quick else (32, 3)
    tasks = args.tasks.split(",")
    if unknown := sorted(set(tasks) - set(METRIC)):
        parser.error(f"--tasks: no task {', '.join(unknown)} (tasks: {', '.join(METRIC)})")
    adapters = {}
    for given in args.adapter:
        task, _, folder = given.partition("=")
        if task not in METRIC or not folder:
            parser.error(f"--adapter {given}: give TASK=FOLDER, TASK one of {', '.join(METRIC)}")
        adapters[task] = Path(folder)
    load = os.getloadavg()
    results: dict[str, Any] = {
        "model": args.model,
        "loadBefore": load,
        "tasks": bench(args.model, tasks, per_language, repeats, adapters),
    }
    results["loadAfter"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    name = "precision_bench_quick.json" if args.quick else "precision_bench.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {load[0]:.2f} -> {results['loadAfter'][0]:.2f}")
    for task, r in results["tasks"].items():
        s = r["seconds"]
        print(
            f"RESULT {task}_fp32_s={s['fp32']['median']:.2f} {task}_bf16_s="
            f"{s['bf16']['median']:.2f} {task}_speedup={r['speedup']:.2f} "
            f"{task}_agreeing={r['agreeing']:.3f} "
            f"{task}_largest_{r['metric']}_difference={r['largestMetricDifference']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
