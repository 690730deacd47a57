"""Scoring speed of the evaluator: options (labels, alternatives) continued from one cached
pass over their prompt, against a pass over prompt + option per option (the evaluator before);
summaries and their reference loss from one pass over the text (greedy decoding that stops a
row at its line break), against transformers' generate plus a full forward of text +
reference (the evaluator before).

On the research quickstart's held-out data (examples/research: sentiment, two labels;
reasoning, two alternatives per record; summarisation), the first N records of each of five
languages (N/4 for summarisation), both ways in the same process and interleaved, 3 repeats;
the predictions (the summaries) of both ways must agree.

    python benchmarks/eval_bench.py [--quick] [--models builtin:tiny,builtin:gemma-3-270m]
        [--tasks sentiment,reasoning,summarisation] [--adapter LORA_FOLDER] [--tag TAG]

Ends with RESULT name=value lines and writes benchmarks/results/eval_bench[_quick].json."""

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
TASKS = ("sentiment", "reasoning", "summarisation")


def _records(task: str, per_language: int) -> list[dict[str, Any]]:
    rows = []
    for language in LANGUAGES:
        lines = (DATA / task / f"{language}-eval.jsonl").read_text("utf-8").splitlines()
        rows += [json.loads(line) for line in lines[:per_language]]
    return rows


def _options(task: str, records: list[dict[str, Any]]) -> list[list[str]]:
    if task == "reasoning":
        return [r["choices"] for r in records]
    labels = sorted({r["response"] for r in records})
    return [labels for _ in records]


def bench(
    model_name: str, tasks: list[str], per_language: int, repeats: int, adapter: Path | None
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langmerge.common import models
    from langmerge.common.prompts import prompt_ids, response_ids
    from langmerge.common.reproducible import deterministic
    from langmerge.merger import evaluate

    deterministic()
    folder = models.resolve(model_name, Path(tempfile.mkdtemp()))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    out: dict[str, Any] = {}
    for task in [t for t in tasks if t != "summarisation"]:
        records = _records(task, per_language)
        heads = [prompt_ids(r["prompt"], tokenizer) for r in records]
        options = [[response_ids(o, tokenizer) for o in opts] for opts in _options(task, records)]
        pairs = [(h, o) for h, opts in zip(heads, options, strict=True) for o in opts]
        times: dict[str, list[float]] = {"per_option": [], "cached": []}
        picks: dict[str, list[int]] = {}
        for _ in range(repeats):
            started = time.perf_counter()
            flat = iter(evaluate._logprobs(model, 0, pairs))
            per_option = [[next(flat) for _ in opts] for opts in options]
            times["per_option"].append(time.perf_counter() - started)
            started = time.perf_counter()
            cached = evaluate._option_logprobs(model, 0, heads, options)
            times["cached"].append(time.perf_counter() - started)
            picks = {
                "per_option": [max(range(len(s)), key=s.__getitem__) for s in per_option],
                "cached": [max(range(len(s)), key=s.__getitem__) for s in cached],
            }
        medians = {k: statistics.median(v) for k, v in times.items()}
        out[task] = {
            "records": len(records),
            "seconds": medians,
            "speedup": medians["per_option"] / medians["cached"],
            "samePredictions": picks["per_option"] == picks["cached"],
        }
    if "summarisation" in tasks:
        out["summarisation"] = _bench_generation(
            model, tokenizer, max(per_language // 4, 1), repeats
        )
    return out


def _bench_generation(
    model: Any, tokenizer: Any, per_language: int, repeats: int
) -> dict[str, Any]:
    from langmerge.common.prompts import prompt_ids, response_ids
    from langmerge.merger import evaluate

    records = _records("summarisation", per_language)
    heads = [prompt_ids(r["prompt"], tokenizer) for r in records]
    tails = [response_ids(r["response"], tokenizer) for r in records]
    times: dict[str, list[float]] = {"per_option": [], "cached": []}
    texts: dict[str, list[str]] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        texts["per_option"] = evaluate.generate(model, tokenizer, heads, [len(t) for t in tails])
        evaluate._logprobs(model, 0, list(zip(heads, tails, strict=True)))
        times["per_option"].append(time.perf_counter() - started)
        started = time.perf_counter()
        texts["cached"], _ = evaluate.generate_scored(model, tokenizer, heads, tails)
        times["cached"].append(time.perf_counter() - started)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "records": len(records),
        "seconds": medians,
        "speedup": medians["per_option"] / medians["cached"],
        "samePredictions": texts["per_option"] == texts["cached"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 records per language, 1 run")
    parser.add_argument("--models", default="builtin:tiny,builtin:gemma-3-270m")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument(
        "--adapter",
        type=Path,
        default=None,
        help="a LoRA adapter folder (for example a trained one under a research run's "
        "state/artifacts/) loaded on the model; give one model",
    )
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    args = parser.parse_args()
    per_language, repeats = (20, 1) if args.quick else (64, 3)
    tasks = args.tasks.split(",")
    if unknown := sorted(set(tasks) - set(TASKS)):
        parser.error(f"--tasks: no task {', '.join(unknown)} (tasks: {', '.join(TASKS)})")
    if args.adapter is not None and "," in args.models:
        parser.error("--adapter: give one model with --models, the adapter's base model")
    load = os.getloadavg()
    results = {
        "loadBefore": load,
        "adapter": str(args.adapter) if args.adapter else None,
        "models": {
            m: bench(m, tasks, per_language, repeats, args.adapter) for m in args.models.split(",")
        },
    }
    results["loadAfter"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    name = "eval_bench_quick.json" if args.quick else "eval_bench.json"
    if tasks != list(TASKS):
        name = name.replace(".json", f"_{'_'.join(tasks)}.json")
    if args.adapter is not None:
        name = name.replace(".json", "_adapter.json")
    if args.tag:
        name = name.replace(".json", f"_{args.tag}.json")
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {load[0]:.2f} -> {results['loadAfter'][0]:.2f}")
    for model, tasks in results["models"].items():
        for task, r in tasks.items():
            key = f"{model.replace('builtin:', '')}_{task}"
            print(
                f"RESULT {key}_per_option_s={r['seconds']['per_option']:.2f} "
                f"{key}_cached_s={r['seconds']['cached']:.2f} {key}_speedup={r['speedup']:.2f} "
                f"{key}_same_predictions={r['samePredictions']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
