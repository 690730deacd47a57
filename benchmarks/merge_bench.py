"""Merge speed and memory, against baselines measured in the same run.

1. Every method through `langmerge-merge` (one process each, so peak RSS is its own) on
   synthetic adapters shaped like Llama-3.1-8B LoRA: 32 layers x (q, k, v, o, gate, up, down),
   r = 16, five languages, both factors non-zero. Dense-space methods run on fewer layers
   (--dense-layers) because their cost is the dense weights themselves.
2. KnOTS per module: our factor-space alignment against the dense float64 reference (one SVD
   of the out x (n*in) concatenation), for 1024x1024 and (full mode) 4096x4096 modules.
3. TIES / DARE-TIES against peft on the same dense 4096x4096 tensors (merge_utils), and peft's
   add_weighted_adapter (ties, dare_ties, svd) on a one-module model with the same adapters.

Each method runs --repeat times (default 3; --quick: once); the median and [min-max] are
printed, with the load average before and after.

Usage: python benchmarks/merge_bench.py [--quick] [--repeat N] [--methods knots-ties ...]
(--methods: those methods only, without the per-module and peft comparisons)
Ends with RESULT name=value lines and writes benchmarks/results/merge_bench.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from langmerge.merger import steps
from langmerge.merger.methods import METHODS, MergeSettings, _merge_dense, knots_basis

RESULTS = Path(__file__).resolve().parent / "results"
LANGUAGES = ["en", "de", "fr", "ja", "zh"]
RANK = 16
# Llama-3.1-8B: hidden 4096, intermediate 14336, 8 KV heads of 128.
LLAMA_8B_MODULES = {
    "self_attn.q_proj": (4096, 4096),
    "self_attn.k_proj": (1024, 4096),
    "self_attn.v_proj": (1024, 4096),
    "self_attn.o_proj": (4096, 4096),
    "mlp.gate_proj": (14336, 4096),
    "mlp.up_proj": (14336, 4096),
    "mlp.down_proj": (4096, 14336),
}


def write_adapters(
    root: Path, layers: int, modules: dict[str, tuple[int, int]] | None = None
) -> list[Path]:
    modules = modules or LLAMA_8B_MODULES
    paths = []
    for index, language in enumerate(LANGUAGES):
        generator = torch.Generator().manual_seed(index)
        tensors = {}
        for layer in range(layers):
            for name, (out_features, in_features) in modules.items():
                prefix = f"base_model.model.model.layers.{layer}.{name}"
                tensors[f"{prefix}.lora_A.weight"] = (
                    torch.randn(RANK, in_features, generator=generator) * 0.02
                )
                tensors[f"{prefix}.lora_B.weight"] = (
                    torch.randn(out_features, RANK, generator=generator) * 0.02
                )
        path = root / f"{language}-{layers}-{len(modules)}"
        path.mkdir(parents=True)
        save_file(tensors, str(path / "adapter_model.safetensors"))
        config = {
            "peft_type": "LORA",
            "base_model_name_or_path": "meta-llama/Llama-3.1-8B-Instruct",
            "r": RANK,
            "lora_alpha": 32,
            "target_modules": sorted({n.split(".")[1] for n in LLAMA_8B_MODULES}),
        }
        (path / "adapter_config.json").write_text(json.dumps(config))
        (path / "langmerge.json").write_text(json.dumps({"language": language}))
        paths.append(path)
    return paths


def run_method(method: str, adapters: list[Path], out: Path, device: str = "cpu") -> dict[str, Any]:
    summary = out.with_suffix(".json")
    args = [
        sys.executable,
        "-m",
        "langmerge.merger.cli",
        "--method",
        method,
        "--output",
        str(out),
        "--summary-file",
        str(summary),
        "--rank",
        str(RANK * len(adapters)),
        "--device",
        device,
    ]
    for path in adapters:
        args += ["--adapter", str(path)]
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed: {result.stderr[-2000:]}")
    data = json.loads(summary.read_text())
    shutil.rmtree(out)  # up to 0.8 GB per run; kept, a full run leaves about 10 GB
    return {
        "wall_s": round(wall, 2),
        "merge_s": data["wallSeconds"],
        "peak_rss_gb": round(data["peakRssBytes"] / 1e9, 3),
    }


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median of the runs and [min, max] as figure_range."""
    figures: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        figures[key] = statistics.median(values)
        figures[f"{key}_range"] = [min(values), max(values)]
    return figures


def spread(figures: dict[str, Any], key: str) -> str:
    low, high = figures[f"{key}_range"]
    return f"[{low:.2f}-{high:.2f}]"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def knots_per_module(size: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(size)
    a_list = [torch.randn(RANK, size, generator=generator, dtype=torch.float64) for _ in LANGUAGES]
    b_list = [torch.randn(size, RANK, generator=generator, dtype=torch.float64) for _ in LANGUAGES]

    def dense_reference() -> None:
        concat = torch.cat([b @ a for a, b in zip(a_list, b_list, strict=True)], dim=1)
        torch.linalg.svd(concat, full_matrices=False)

    ours = timed(lambda: knots_basis(a_list, b_list, 1e-5), repeat=3)
    dense = timed(dense_reference)
    return {"ours_s": ours, "dense_reference_s": dense, "speedup": dense / ours}


def versus_peft(size: int) -> dict[str, float]:
    from peft.utils import merge_utils

    generator = torch.Generator().manual_seed(1)
    a_list = [torch.randn(RANK, size, generator=generator) * 0.02 for _ in LANGUAGES]
    b_list = [torch.randn(size, RANK, generator=generator) * 0.02 for _ in LANGUAGES]
    deltas = torch.stack([b @ a for a, b in zip(a_list, b_list, strict=True)])
    weights = torch.ones(len(LANGUAGES))

    def ours(method: str) -> Callable[[], object]:
        settings = MergeSettings(
            method=METHODS[method], weights=(1.0,) * len(LANGUAGES), density=0.5
        )
        return lambda: _merge_dense("m", lambda _: (a_list, b_list), settings)

    figures = {
        "ours_ties_s": timed(ours("ties"), repeat=2),
        "peft_ties_s": timed(lambda: merge_utils.ties(deltas, weights, 0.5)),
        "ours_dare_ties_s": timed(ours("dare-ties"), repeat=2),
        "peft_dare_ties_s": timed(lambda: merge_utils.dare_ties(deltas, weights, 0.5)),
        "bucket_threshold_s": timed(lambda: steps.magnitude_threshold(deltas[0], 0.5), repeat=3),
        "kthvalue_threshold_s": timed(
            lambda: deltas[0].abs().flatten().kthvalue(deltas[0].numel() // 2)
        ),
    }
    figures["ties_speedup"] = figures["peft_ties_s"] / figures["ours_ties_s"]
    figures["dare_ties_speedup"] = figures["peft_dare_ties_s"] / figures["ours_dare_ties_s"]
    return figures


def peft_add_weighted_adapter(size: int) -> dict[str, float]:
    """peft's own merge entry point on a one-module model carrying the five adapters."""
    from peft import LoraConfig, get_peft_model

    model = torch.nn.Sequential()
    model.add_module("proj", torch.nn.Linear(size, size, bias=False))
    peft_model = get_peft_model(
        model, LoraConfig(r=RANK, lora_alpha=32, target_modules=["proj"], init_lora_weights=False)
    )
    for language in LANGUAGES[1:]:
        peft_model.add_adapter(
            language,
            LoraConfig(r=RANK, lora_alpha=32, target_modules=["proj"], init_lora_weights=False),
        )
    names = ["default", *LANGUAGES[1:]]
    figures = {}
    for kind in ("ties", "dare_ties", "svd"):
        kwargs: dict[str, Any] = {"density": 0.5} if kind != "svd" else {}
        figures[f"peft_add_weighted_{kind}_s"] = timed(
            lambda kind=kind, kwargs=kwargs: peft_model.add_weighted_adapter(
                names, [1.0] * len(names), f"merged-{kind}", combination_type=kind, **kwargs
            )
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced run, under a minute")
    parser.add_argument("--layers", type=int, default=None, help="layers for low-rank methods")
    parser.add_argument("--dense-layers", type=int, default=None, help="layers for dense methods")
    parser.add_argument("--repeat", type=int, default=None, help="runs per method (default 3)")
    parser.add_argument(
        "--methods", nargs="+", choices=sorted(METHODS), default=None, help="default: all"
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    layers = args.layers or (2 if args.quick else 32)
    dense_layers = args.dense_layers or (1 if args.quick else 2)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "threads": torch.get_num_threads(),
        "layers": layers,
        "dense_layers": dense_layers,
        "runs_per_method": repeat,
        "load_average_before": load_average(),
        "methods": {},
    }
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        root = Path(tmp)
        adapters = write_adapters(root, layers)
        # Quick mode: dense methods on the attention modules of one layer only.
        attention = {k: v for k, v in LLAMA_8B_MODULES.items() if k.startswith("self_attn")}
        dense_modules = attention if args.quick else LLAMA_8B_MODULES
        dense_adapters = write_adapters(root, dense_layers, dense_modules)
        results["dense_modules"] = sorted(dense_modules)
        for method, meta in METHODS.items():
            if args.methods and method not in args.methods:
                continue
            chosen = dense_adapters if meta.space == "dense" else adapters
            runs = [run_method(method, chosen, root / f"out-{method}-{i}") for i in range(repeat)]
            figures = median_of(runs)
            figures["layers"] = dense_layers if meta.space == "dense" else layers
            results["methods"][method] = figures
            print(
                f"{method:16s} layers={figures['layers']:>2} "
                f"merge={figures['merge_s']:>7.2f}s {spread(figures, 'merge_s')} "
                f"wall={figures['wall_s']:>7.2f}s "
                f"peak_rss={figures['peak_rss_gb']:.2f} GB {spread(figures, 'peak_rss_gb')}",
                flush=True,
            )
    if args.methods:  # a targeted run: the chosen methods only
        results["load_average_after"] = load_average()
        print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "merge_bench_methods.json").write_text(json.dumps(results, indent=2))
        for method, figures in results["methods"].items():
            key = method.replace("-", "_")
            print(f"RESULT {key}_seconds={figures['merge_s']}")
            print(f"RESULT {key}_peak_rss_gb={figures['peak_rss_gb']}")
        return 0
    results["knots_module_1024"] = knots_per_module(1024)
    print(f"knots 1024x1024 module: {results['knots_module_1024']}", flush=True)
    if not args.quick:
        results["knots_module_4096"] = knots_per_module(4096)
        print(f"knots 4096x4096 module: {results['knots_module_4096']}", flush=True)
    size = 1024 if args.quick else 4096
    results[f"versus_peft_{size}"] = versus_peft(size)
    print(f"versus peft {size}x{size}: {results[f'versus_peft_{size}']}", flush=True)
    results[f"peft_add_weighted_adapter_{size}"] = peft_add_weighted_adapter(size)
    print(
        f"peft add_weighted_adapter {size}: {results[f'peft_add_weighted_adapter_{size}']}",
        flush=True,
    )

    results["load_average_after"] = load_average()
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    RESULTS.mkdir(exist_ok=True)
    name = "merge_bench_quick.json" if args.quick else "merge_bench.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2))
    knots = results["methods"]["knots-ties"]
    print(f"RESULT knots_ties_seconds={knots['merge_s']}")
    print(f"RESULT knots_ties_layers={knots['layers']}")
    print(f"RESULT knots_ties_peak_rss_gb={knots['peak_rss_gb']}")
    print(f"RESULT knots_ties_seconds_range={knots['merge_s_range']}")
    print(f"RESULT knots_module_speedup_1024={results['knots_module_1024']['speedup']:.1f}")
    if "knots_module_4096" in results:
        print(f"RESULT knots_module_speedup_4096={results['knots_module_4096']['speedup']:.1f}")
    print(
        f"RESULT ties_vs_peft_speedup_{size}={results[f'versus_peft_{size}']['ties_speedup']:.1f}"
    )
    dare_speedup = results[f"versus_peft_{size}"]["dare_ties_speedup"]
    print(f"RESULT dare_ties_vs_peft_speedup_{size}={dare_speedup:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
