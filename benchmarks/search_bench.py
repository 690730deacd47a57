"""Merge search cost, against baselines measured in the same run.

1. The merge part of a search of 8 KnOTS candidates (knots-ties at densities 0.3/0.5/0.7 x
   lambda 1.0/1.5, knots-dare-ties at seeds 0/1) on synthetic adapters shaped like
   Llama-3.1-8B LoRA (merge_bench.py's: 32 layers x 7 modules, r16, five languages), each
   candidate made as a LoRA (their shared basis once; held in memory within the product's
   default budget, a quarter of the memory available, else written to scratch) and the winner
   written as publishing does, against one merge (knots-ties, density 0.5) and against the
   8 merges run separately. Each side runs in its own process (its peak RSS is its own),
   interleaved, --repeat times; medians and [min-max].
2. Scoring 8 candidates on validation data (5 languages) in one loaded model (their weights
   copied into one adapter slot) against a fresh model load per candidate, on builtin:tiny
   and, where the gemma group is installed, on Gemma 3 270M.
3. (`--parts languages`, not in the default run) One loaded model's validation records, every
   language's in shared batches (the evaluator's `evaluate_languages`) against a language at
   a time, both in this process, alternating which goes first, --repeat rounds; the
   predictions must agree.

Usage: python benchmarks/search_bench.py [--quick] [--repeat N] [--layers N]
    [--parts merge scoring languages] [--precision fp32|bf16] [--tag TAG]
Ends with RESULT name=value lines and writes benchmarks/results/search_bench[_quick].json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langmerge.common.summary import peak_rss_bytes

RESULTS = Path(__file__).resolve().parent / "results"
GRID = {
    "grid": [
        {"method": "knots-ties", "densities": [0.3, 0.5, 0.7], "lambdas": [1.0, 1.5]},
        {"method": "knots-dare-ties", "seeds": [0, 1]},
    ]
}
ONE = {"grid": [{"method": "knots-ties", "densities": [0.5]}]}


def _merge_bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "merge_bench", Path(__file__).with_name("merge_bench.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- part 1: one side of the merge comparison, in a process of its own ----------------------
def merge_side(side: str, adapters: list[Path], scratch: Path) -> dict[str, float]:
    from langmerge.merger import search as grid
    from langmerge.merger.adapters import load_adapter
    from langmerge.merger.methods import METHODS, Merger, MergeSettings
    from langmerge.merger.output import write_lora
    from langmerge.merger.run import candidate_settings
    from langmerge.merger.shared import SharedKnots, merge_candidates

    loaded = [load_adapter(str(p), p) for p in adapters]
    common = MergeSettings(method=METHODS["knots-ties"], weights=(1.0,) * len(loaded))
    spec = ONE if side == "one" else GRID
    settings = candidate_settings(grid.parse(spec), common, loaded, "sum-to-one", None)
    rank = sum(int(a.config["r"]) for a in loaded)
    started = time.perf_counter()
    if side == "search":
        shared = SharedKnots(loaded, common.knots_tolerance)
        written = merge_candidates(loaded, settings, scratch / "candidates", rank, shared)
        assert all(w.failure is None for w in written), [w.failure for w in written]
        # The winner's adapter, as publishing it makes it (the first candidate standing in).
        (scratch / "winner").mkdir()
        written[0].publish(scratch / "winner")
    else:  # one merge, or every candidate as its own merge
        for index, candidate in enumerate(settings):
            merger = Merger(loaded, candidate)
            merger.prepare()
            (scratch / str(index)).mkdir(parents=True)
            write_lora(merger, loaded[0], scratch / str(index), rank)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()  # this process's own, not its parent's (VmHWM)
    return {"seconds": round(seconds, 3), "peak_rss_gb": round(peak / 1e9, 3)}


def run_side(side: str, adapters: list[Path]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"search-bench-{side}-") as scratch:
        args = [sys.executable, __file__, "--side", side, "--scratch", scratch]
        args += [arg for p in adapters for arg in ("--adapter", str(p))]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{side}: {result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def merge_part(layers: int, repeat: int) -> dict[str, Any]:
    bench = _merge_bench()
    with tempfile.TemporaryDirectory(prefix="search-bench-adapters-") as root:
        adapters = bench.write_adapters(Path(root), layers)
        runs: dict[str, list[dict[str, float]]] = {"one": [], "search": [], "separate": []}
        for _ in range(repeat):  # interleaved: a drift of the machine's load hits every side
            for side, measured in runs.items():
                measured.append(run_side(side, adapters))
    figures: dict[str, Any] = {}
    for side, values in runs.items():
        for key in ("seconds", "peak_rss_gb"):
            series = [v[key] for v in values]
            figures[f"{side}_{key}"] = statistics.median(series)
            figures[f"{side}_{key}_range"] = [min(series), max(series)]
    figures["search_vs_one"] = figures["search_seconds"] / figures["one_seconds"]
    figures["separate_vs_one"] = figures["separate_seconds"] / figures["one_seconds"]
    figures["separate_vs_search"] = figures["separate_seconds"] / figures["search_seconds"]
    return figures


# --- part 2: scoring candidates in one loaded model ------------------------------------------
def _validation(base: Path, per_language: int) -> dict[str, list[dict[str, Any]]]:
    root = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "datasets"
    data = {}
    for path in sorted((root / "sentiment").glob("*-eval.jsonl")):
        lines = path.read_text("utf-8").splitlines()[:per_language]
        data[path.name.split("-")[0]] = [json.loads(line) for line in lines]
    return data


def scoring(
    base_name: str, per_language: int, repeat: int, precision: str
) -> dict[str, Any] | None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from langmerge.common import models
    from langmerge.merger import evaluate

    with tempfile.TemporaryDirectory(prefix="search-bench-score-") as scratch_name:
        scratch = Path(scratch_name)
        try:
            base = models.resolve(base_name, scratch)
        except (ValueError, FileNotFoundError) as missing:
            print(f"skipped {base_name}: {missing}")
            return None
        # 8 candidate LoRAs on the base (random non-zero factors: the scores must differ).
        candidates = {}
        for index in range(8):
            torch.manual_seed(index)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            config = LoraConfig(
                r=8, lora_alpha=8, init_lora_weights=False, target_modules=["q_proj", "v_proj"]
            )
            peft_model = get_peft_model(model, config)
            for name, parameter in peft_model.named_parameters():
                if "lora_" in name:
                    parameter.data.mul_(0.01)
            peft_model.save_pretrained(scratch / str(index))
            candidates[str(index)] = [scratch / str(index)]
        data = _validation(base, per_language)
        in_place, fresh = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            swapped = evaluate.score_adapters_in_place(base, candidates, data, precision=precision)
            in_place.append(time.perf_counter() - started)
            started = time.perf_counter()
            loaded = {
                n: evaluate.score_models(base, {n: p[0]}, data, precision=precision)[n]
                for n, p in candidates.items()
            }
            fresh.append(time.perf_counter() - started)
            for name in candidates:  # the same scores both ways
                for language in data:
                    assert swapped[name][language].metrics == loaded[name][language].metrics
    figures = {
        "in_place_s": statistics.median(in_place),
        "in_place_s_range": [min(in_place), max(in_place)],
        "fresh_load_s": statistics.median(fresh),
        "fresh_load_s_range": [min(fresh), max(fresh)],
        "records": per_language * len(data),
        "precision": precision,
    }
    figures["speedup"] = figures["fresh_load_s"] / figures["in_place_s"]
    return figures


def languages_together(
    base_name: str, per_language: int, repeat: int, precision: str
) -> dict[str, Any] | None:
    from transformers import AutoTokenizer

    from langmerge.common import models
    from langmerge.common.reproducible import deterministic
    from langmerge.merger import evaluate

    deterministic()
    with tempfile.TemporaryDirectory(prefix="search-bench-languages-") as scratch:
        try:
            base = models.resolve(base_name, Path(scratch))
        except (ValueError, FileNotFoundError) as missing:
            print(f"skipped {base_name}: {missing}")
            return None
        model = evaluate._load(base, None, precision)
        tokenizer = AutoTokenizer.from_pretrained(base)
    data = _validation(base, per_language)

    def alone() -> dict[str, Any]:
        return {
            language: evaluate.evaluate(model, tokenizer, records, "prompt", "response", False)
            for language, records in data.items()
        }

    def together() -> dict[str, Any]:
        return evaluate.evaluate_languages(model, tokenizer, data, "prompt", "response", False)

    seconds: dict[str, list[float]] = {"alone": [], "together": []}
    for round_ in range(repeat):
        sides = [("alone", alone), ("together", together)]
        for side, score in sides if round_ % 2 == 0 else sides[::-1]:
            started = time.perf_counter()
            scored = score()
            seconds[side].append(time.perf_counter() - started)
            if side == "alone":
                predicted = {language: s.predicted for language, s in scored.items()}
            else:
                assert predicted == {language: s.predicted for language, s in scored.items()}
    figures: dict[str, Any] = {"records": per_language * len(data), "precision": precision}
    for side, runs in seconds.items():
        figures[f"{side}_s"] = statistics.median(runs)
        figures[f"{side}_s_runs"] = runs
    figures["speedup"] = figures["alone_s"] / figures["together_s"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced run, a few minutes")
    parser.add_argument("--repeat", type=int, default=None, help="runs per side (default 3)")
    parser.add_argument("--layers", type=int, default=None, help="layers of the 8B-shaped set")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["merge", "scoring", "languages"],
        default=["merge", "scoring"],
        help="which parts to run (default: merge and scoring)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="scoring precision (the research scores in bf16 on CPUs with AVX512-BF16/AMX)",
    )
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--adapter", action="append", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # a child process measuring one side of part 1
        print(json.dumps(merge_side(args.side, args.adapter, args.scratch)))
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    layers = args.layers or (2 if args.quick else 32)
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "layers": layers,
        "runs": repeat,
        "load_average_before": load_average(),
    }
    merge = results["merge"] = merge_part(layers, repeat) if "merge" in args.parts else {}
    if merge:
        print(
            f"merge part, {layers} layers x 7 modules, 5 adapters r16 (medians of {repeat}): "
            f"one merge {merge['one_seconds']:.1f} s ({merge['one_peak_rss_gb']:.2f} GB), "
            f"search of 8 {merge['search_seconds']:.1f} s "
            f"({merge['search_peak_rss_gb']:.2f} GB), 8 separate merges "
            f"{merge['separate_seconds']:.1f} s ({merge['separate_peak_rss_gb']:.2f} GB)"
        )
    per_language = 4 if args.quick else 16
    model_parts = {  # part -> how it is measured, and its line of figures
        "scoring": (
            scoring,
            "scoring 8 candidates on {records} records ({base}): in one loaded model "
            "{in_place_s:.1f} s, a fresh load each {fresh_load_s:.1f} s",
        ),
        "languages": (
            languages_together,
            "one model's {records} records ({base}): a language at a time {alone_s:.3f} s, "
            "every language together {together_s:.3f} s",
        ),
    }
    for part, (measure, line) in model_parts.items():
        results[part] = {}
        for base in ("builtin:tiny", "builtin:gemma-3-270m") if part in args.parts else ():
            figures = measure(base, per_language, repeat, args.precision)
            if figures is not None:
                results[part][base] = figures
                print(line.format(base=base, **figures))
    results["load_average_after"] = load_average()
    name = "search_bench_quick.json" if args.quick else "search_bench.json"
    if args.parts != ["merge", "scoring"]:
        name = name.replace(".json", f"_{'_'.join(args.parts)}.json")
    if args.precision != "fp32":
        name = name.replace(".json", f"_{args.precision}.json")
    if args.tag:
        name = name.replace(".json", f"_{args.tag}.json")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    if merge:
        print(f"RESULT search_merge_vs_one={merge['search_vs_one']:.2f}")
        print(f"RESULT separate_merges_vs_one={merge['separate_vs_one']:.2f}")
        print(f"RESULT separate_merges_vs_search={merge['separate_vs_search']:.2f}")
    for part, label in (("scoring", "scoring_in_place"), ("languages", "languages_together")):
        for base, figures in results[part].items():
            key = base.split(":")[1].replace("-", "_").replace(".", "_")
            print(f"RESULT {label}_speedup_{key}={figures['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
