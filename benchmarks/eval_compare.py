"""The evaluator against another version of itself: what a change to it does to the research's
scores and to its time.

`score` scores the research quickstart's held-out data (examples/research: sentiment,
reasoning, summarisation; the first N records per language, N/2 for summarisation) on Gemma
3 270M with the evaluator on the Python path, for the base model and for each `--adapter`,
the way the local loop does (`evaluate.score_models`: a model load per model and task), and
writes each model's per-example predictions (labels, or ROUGE-L per summary), its metrics and
each task's seconds. Run it once with an older checkout first on the path, once without:

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/merger/src:/tmp/old/common/src \\
        python benchmarks/eval_compare.py score before.json --adapter de=ADAPTER_FOLDER
    python benchmarks/eval_compare.py score after.json --adapter de=ADAPTER_FOLDER

`compare` prints, per task and model, how many examples score differently and each
language's metric both ways, and each task's seconds both ways:

    python benchmarks/eval_compare.py compare before.json after.json"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_bench import DATA, LANGUAGES

PRIMARY = {"sentiment": "f1", "reasoning": "accuracy", "summarisation": "rougeL"}


def score(out: Path, per_language: int, adapters: dict[str, Path], precision: str) -> None:
    from langmerge.common import models
    from langmerge.merger import evaluate

    base = models.resolve(models.GEMMA, Path(tempfile.mkdtemp()))
    results: dict[str, Any] = {"loadBefore": os.getloadavg(), "evaluator": evaluate.__file__}
    for task, metric in PRIMARY.items():
        limit = per_language // 2 if task == "summarisation" else per_language
        data = {
            language: [
                json.loads(line)
                for line in (DATA / task / f"{language}-eval.jsonl").read_text().splitlines()
            ][:limit]
            for language in LANGUAGES
        }
        started = time.perf_counter()
        scored = evaluate.score_models(
            base,
            {"base": None, **adapters},
            data,
            generation=task == "summarisation",
            precision=precision,
        )
        results[task] = {
            "seconds": time.perf_counter() - started,
            "models": {
                name: {
                    language: {
                        "metric": s.metrics.get(metric),
                        "examples": s.predicted or s.values.get("rougeL", []),
                    }
                    for language, s in by_language.items()
                }
                for name, by_language in scored.items()
            },
        }
        print(f"{task}: {results[task]['seconds']:.1f} s", flush=True)
    results["loadAfter"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=1) + "\n")


def compare(before_path: Path, after_path: Path) -> None:
    before = json.loads(before_path.read_text())
    after = json.loads(after_path.read_text())
    for task in PRIMARY:
        was, now = before[task], after[task]
        print(f"{task}: {was['seconds']:.1f} s -> {now['seconds']:.1f} s")
        for name, by_language in was["models"].items():
            differ = total = 0
            metrics = []
            for language, old in by_language.items():
                new = now["models"][name][language]
                pairs = list(zip(old["examples"], new["examples"], strict=True))
                differ += sum(a != b for a, b in pairs)
                total += len(pairs)
                metrics.append(f"{language} {old['metric']:.3f}->{new['metric']:.3f}")
            print(f"  {name}: {differ} of {total} examples differ; {' '.join(metrics)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("score", help="score with the evaluator on the path")
    run.add_argument("out", type=Path)
    run.add_argument("--per-language", type=int, default=40)
    run.add_argument("--adapter", action="append", default=[], help="NAME=LORA_FOLDER")
    run.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    both = verbs.add_parser("compare", help="set two runs' results side by side")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.verb == "compare":
        compare(args.before, args.after)
        return 0
    adapters = {}
    for value in args.adapter:
        name, _, folder = value.partition("=")
        if not name or not folder:
            parser.error(f"--adapter takes NAME=LORA_FOLDER, got {value!r}")
        adapters[name] = Path(folder)
    score(args.out, args.per_language, adapters, args.precision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
