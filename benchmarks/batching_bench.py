"""The evaluator's batches cut by length (langmerge.merger.decoding.length_batches: the records
longest first, cut where padded positions plus a charge a batch come least) against its
batches before, of 64 records in their given order.

On the research quickstart's held-out data (examples/research: sentiment, reasoning,
summarisation; the first N records of each of five languages, N/2 for summarisation), one
model loaded once in bf16 (Gemma 3 270M by default), every language's records scored together
(`evaluate.score_languages`), both ways in the same process, which goes first turning each
round; medians of the rounds. Prints each way's padded positions per real position, and how
many predictions (labels, alternatives, summaries) differ: in bf16 a record's scores move
with its batch-mates.

    python benchmarks/batching_bench.py [--model builtin:gemma-3-270m] [--per-language 200]
        [--tasks sentiment,reasoning,summarisation] [--rounds 3] [--tag TAG]

Ends with RESULT name=value lines and writes benchmarks/results/batching_bench[_TAG].json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_bench import DATA, LANGUAGES, RESULTS, TASKS


def in_given_order(lengths: list[int], most: int, charge: int) -> list[list[int]]:
    """The batching before: `most` records a batch, in their given order."""
    return [list(range(s, min(s + most, len(lengths)))) for s in range(0, len(lengths), most)]


def _padding(heads: list[list[int]], batches: list[list[int]]) -> float:
    padded = sum(len(rows) * max(len(heads[row]) for row in rows) for rows in batches)
    return padded / sum(len(head) for head in heads)


def bench(model_name: str, task: str, per_language: int, rounds: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langmerge.common import models
    from langmerge.common.reproducible import deterministic
    from langmerge.merger import decoding, evaluate

    deterministic()
    base = models.resolve(model_name, Path(tempfile.mkdtemp(prefix="batching-bench-")))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).eval()
    limit = per_language // 2 if task == "summarisation" else per_language
    data = {
        language: [
            json.loads(line)
            for line in (DATA / task / f"{language}-eval.jsonl").read_text("utf-8").splitlines()
        ][:limit]
        for language in LANGUAGES
    }
    generation = task == "summarisation"
    read = evaluate.read_languages(tokenizer, data, "prompt", "response", generation)
    heads = [head for one in read.values() for head in one.heads]
    most, charge = (
        (evaluate.GENERATION_BATCH, evaluate.GENERATION_CHARGE)
        if generation
        else (evaluate.BATCH, evaluate.BATCH_CHARGE)
    )
    by_length = decoding.length_batches
    ways = {"given_order": in_given_order, "by_length": by_length}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    predicted: dict[str, Any] = {}
    for round_ in range(rounds):
        order = list(ways) if round_ % 2 == 0 else list(ways)[::-1]
        for way in order:
            decoding.length_batches = ways[way]
            try:
                started = time.perf_counter()
                scored = evaluate.score_languages(model, tokenizer, read)
                seconds[way].append(time.perf_counter() - started)
            finally:
                decoding.length_batches = by_length
            predicted[way] = [
                example
                for one in scored.values()
                for example in (one.predicted or one.values.get("rougeL", []))
            ]
    lengths = [len(head) for head in heads]
    figures: dict[str, Any] = {
        "records": len(heads),
        "padding": {way: _padding(heads, ways[way](lengths, most, charge)) for way in ways},
        "batches": {way: len(ways[way](lengths, most, charge)) for way in ways},
        "seconds": {way: statistics.median(s) for way, s in seconds.items()},
        "runs": seconds,
        "differ": sum(
            a != b for a, b in zip(predicted["given_order"], predicted["by_length"], strict=True)
        ),
    }
    figures["speedup"] = figures["seconds"]["given_order"] / figures["seconds"]["by_length"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="builtin:gemma-3-270m")
    parser.add_argument("--per-language", type=int, default=200)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "model": args.model,
        "perLanguage": args.per_language,
        "loadAverageBefore": os.getloadavg(),
        "tasks": {},
    }
    for task in args.tasks.split(","):
        figures = bench(args.model, task, args.per_language, args.rounds)
        results["tasks"][task] = figures
        print(
            f"{task}: {figures['records']} records, padded {figures['padding']['given_order']:.2f}x"
            f" -> {figures['padding']['by_length']:.2f}x, {figures['seconds']['given_order']:.1f} s"
            f" -> {figures['seconds']['by_length']:.1f} s, {figures['differ']} predictions differ",
            flush=True,
        )
    results["loadAverageAfter"] = os.getloadavg()
    print(f"load average {results['loadAverageBefore']} -> {results['loadAverageAfter']}")
    for task, figures in results["tasks"].items():
        print(f"RESULT batching_speedup_{task}={figures['speedup']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    name = f"batching_bench_{args.tag}.json" if args.tag else "batching_bench.json"
    (RESULTS / name).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
