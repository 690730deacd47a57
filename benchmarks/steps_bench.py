"""The merge steps' own costs, each against its baseline in the same process.

1. Trimming one chunk of TIES (5 adapters x 12 rows x 4096, float32, 1 MiB) with a bool mask
   (`torch.where(|x| < t, 0, x)`, what the merger did before d4d23d3) against the float
   arithmetic it does now (steps.magnitude_keep).
2. One module's TIES (methods.merge_blocks over 5 x 80 x 4096 float32 blocks) in the
   merger's chunks (1 MiB) against 4 MiB chunks.
3. DARE's keep-mask: torch's CPU generator (before d4d23d3), numpy's PCG64 through
   `integers` (d4d23d3), and the same PCG64 integers read from its raw 64-bit output (now).
4. This machine's cost of fresh memory: seconds to first touch each of --gib GiB allocated
   and kept in one process, against touching the same memory again.
5. DARE's product with its keep-mask on one piece as the merger takes it (5 adapters x 25
   rows x 2048, 1 MiB): a copy of the values times the bool mask (before) against the mask
   read as bytes and made floats into a buffer reused for every piece (now, steps.dare); the
   same bits.
6. One dense module's merge (methods._merge_dense: 5 adapters r16 on a module of each shape
   in DENSE_SHAPES: Llama-3.2-1B's MLP, 8192 x 2048, and Llama-3.1-8B's) for ties and dare-ties:
   each 16 MiB row chunk of the updates sparsified and combined at once, with the bool
   product (before), against cache-sized pieces with the byte mask (now); the same bits at
   these widths.

Usage: python benchmarks/steps_bench.py [--repeat N] [--gib N] [--parts trim ties draw product
                                        dense memory] [--tag TAG]
Prints medians of --repeat timings (each timing itself a mean over many calls) with [min-max]
and the load average; writes benchmarks/results/steps_bench.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langmerge.merger import methods, steps
from langmerge.merger.methods import METHODS, MergeSettings, dare_generator

RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def per_call(work: Callable[[], object], calls: int) -> float:
    work()  # warm
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls


def summary(values: list[float], scale: float) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values) * scale, 3),
        "range": [round(min(values) * scale, 3), round(max(values) * scale, 3)],
    }


def trim(repeat: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    part = torch.randn(5, 12, 4096, generator=generator)
    limits = torch.full((5, 1, 1), 0.67)
    masked = [per_call(lambda: torch.where(part.abs() < limits, 0.0, part), 300)]
    floats = [per_call(lambda: part * steps.magnitude_keep(part, limits), 300)]
    for _ in range(repeat - 1):  # interleaved: a drift of the load hits both
        masked.append(per_call(lambda: torch.where(part.abs() < limits, 0.0, part), 300))
        floats.append(per_call(lambda: part * steps.magnitude_keep(part, limits), 300))
    out = {"bool_mask_us": summary(masked, 1e6), "float_us": summary(floats, 1e6)}
    out["ratio"] = round(statistics.median(masked) / statistics.median(floats), 2)
    return out


def ties_module(repeat: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randn(5, 80, 4096, generator=generator)
    settings = MergeSettings(method=METHODS["knots-ties"], weights=(0.2,) * 5, density=0.5)
    now = methods.CACHE_CHUNK_BYTES
    timings: dict[int, list[float]] = {now: [], 4 << 20: []}
    try:
        for _ in range(repeat):
            for chunk, series in timings.items():
                methods.CACHE_CHUNK_BYTES = chunk
                series.append(
                    per_call(lambda: methods.merge_blocks(blocks, settings, "m", [0.67] * 5), 20)
                )
    finally:
        methods.CACHE_CHUNK_BYTES = now
    out = {f"chunk_{chunk >> 20}_mib_ms": summary(v, 1e3) for chunk, v in timings.items()}
    out["ratio"] = round(statistics.median(timings[4 << 20]) / statistics.median(timings[now]), 2)
    return out


def dare_draw(repeat: int) -> dict[str, Any]:
    """DARE's keep-mask for 5 x 80 x 4096 entries: torch's CPU generator (`torch.rand < d`,
    before d4d23d3), PCG64's `integers` (d4d23d3) and the merger's draw now
    (steps.dare_keep_mask: the same integers from the raw 64-bit output)."""
    shape = (5, 80, 4096)
    generator = torch.Generator().manual_seed(0)
    rng = dare_generator(0, "m", 0)
    limit = np.uint32(1 << 31)

    def integers() -> object:
        draws = rng.integers(0, 1 << 32, size=shape, dtype=np.uint32)
        return torch.from_numpy(draws < limit)

    old, pcg, new = [], [], []
    for _ in range(repeat):
        old.append(per_call(lambda: torch.rand(shape, generator=generator) < 0.5, 20))
        pcg.append(per_call(integers, 20))
        new.append(per_call(lambda: steps.dare_keep_mask(torch.Size(shape), 0.5, rng), 20))
    out = {
        "torch_rand_ms": summary(old, 1e3),
        "pcg64_integers_ms": summary(pcg, 1e3),
        "pcg64_raw_ms": summary(new, 1e3),
    }
    out["ratio"] = round(statistics.median(old) / statistics.median(new), 2)
    out["integers_vs_raw"] = round(statistics.median(pcg) / statistics.median(new), 2)
    return out


def _bool_product(
    values: torch.Tensor, keep: torch.Tensor, density: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """DARE before: a copy of the values times the bool mask, rescaled (`out` unused)."""
    return values.clone().mul_(keep).mul_(1.0 / density)


def dare_product(repeat: int) -> dict[str, Any]:
    """One cache-sized piece as merge_blocks takes it: 5 adapters x 25 rows x 2048, 1 MiB."""
    keep = torch.stack(
        [
            steps.dare_keep_mask(torch.Size((25, 2048)), 0.5, dare_generator(0, "m", t))
            for t in range(5)
        ]
    )
    values = torch.randn(5, 25, 2048, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_bool_product(values, keep, 0.5), steps.dare(values, keep, 0.5))
    buffer = torch.empty_like(values)  # as merge_blocks reuses one for its pieces
    before, now = [], []
    for _ in range(repeat):
        before.append(per_call(lambda: _bool_product(values, keep, 0.5), 300))
        now.append(per_call(lambda: steps.dare(values, keep, 0.5, out=buffer), 300))
    out = {"bool_product_us": summary(before, 1e6), "byte_mask_us": summary(now, 1e6)}
    out["ratio"] = round(statistics.median(before) / statistics.median(now), 2)
    return out


# (out, in) of the modules merged: Llama-3.2-1B's MLP (what mergekit_bench.py merges) and
# Llama-3.1-8B's MLP and attention (what merge_bench.py merges).
DENSE_SHAPES = ((8192, 2048), (14336, 4096), (4096, 14336), (4096, 4096))


def dense_module(repeat: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    now_chunk, now_product = methods.CACHE_CHUNK_BYTES, steps.dare
    for rows, cols in DENSE_SHAPES:
        factors = (
            [torch.randn(16, cols, generator=generator) / 45 for _ in range(5)],
            [torch.randn(rows, 16, generator=generator) / 4 for _ in range(5)],
        )
        for method in ("ties", "dare-ties"):
            settings = MergeSettings(method=METHODS[method], weights=(0.2,) * 5, density=0.5)

            def merge(settings: MergeSettings = settings, factors: Any = factors) -> object:
                return methods._merge_dense("m", lambda _: factors, settings)

            before, now = [], []
            try:
                for _ in range(repeat):
                    methods.CACHE_CHUNK_BYTES, steps.dare = 1 << 40, _bool_product
                    before.append(per_call(merge, 3))
                    methods.CACHE_CHUNK_BYTES, steps.dare = now_chunk, now_product
                    now.append(per_call(merge, 3))
            finally:
                methods.CACHE_CHUNK_BYTES, steps.dare = now_chunk, now_product
            key = f"{method} {rows}x{cols}"
            out[key] = {"before_ms": summary(before, 1e3), "now_ms": summary(now, 1e3)}
            out[key]["ratio"] = round(statistics.median(before) / statistics.median(now), 2)
    return out


def fresh_memory(gib: int) -> dict[str, Any]:
    first, again, kept = [], [], []
    for _ in range(gib):
        block = torch.empty(256 << 20)  # 1 GiB of float32
        started = time.perf_counter()
        block.fill_(1.0)
        first.append(round(time.perf_counter() - started, 3))
        started = time.perf_counter()
        block.fill_(2.0)
        again.append(round(time.perf_counter() - started, 3))
        kept.append(block)  # kept: the next GiB is fresh memory
    return {"first_touch_s_per_gib": first, "touch_again_s_per_gib": again}


PARTS = {
    "trim": ("trim one chunk", lambda args: trim(args.repeat)),
    "ties": ("TIES one module", lambda args: ties_module(args.repeat)),
    "draw": ("DARE draw", lambda args: dare_draw(args.repeat)),
    "product": ("DARE product", lambda args: dare_product(args.repeat)),
    "dense": ("dense module", lambda args: dense_module(args.repeat)),
    "memory": ("fresh memory", lambda args: fresh_memory(args.gib)),
}


def ratios(results: dict[str, Any]) -> list[str]:
    """The RESULT lines of the parts that ran."""
    lines = []
    if "trim" in results:
        lines.append(f"trim_bool_mask_vs_float={results['trim']['ratio']}")
    if "ties" in results:
        lines.append(f"ties_module_4mib_vs_merger_chunks={results['ties']['ratio']}")
    if "draw" in results:
        lines.append(f"dare_torch_rand_vs_pcg64={results['draw']['ratio']}")
        lines.append(f"dare_pcg64_integers_vs_raw={results['draw']['integers_vs_raw']}")
    if "product" in results:
        lines.append(f"dare_bool_product_vs_byte_mask={results['product']['ratio']}")
    for key, figures in results.get("dense", {}).items():
        method, shape = key.split()
        lines.append(f"dense_{method}_{shape}_before_vs_now={figures['ratio']}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timings per side (default 5)")
    parser.add_argument("--gib", type=int, default=7, help="GiB for the fresh-memory probe")
    parser.add_argument("--tag", default="", help="written as steps_bench[_TAG].json")
    parser.add_argument(
        "--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="default: all"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "load_average_before": load_average(),
    }
    for part in args.parts:
        label, measure = PARTS[part]
        results[part] = measure(args)
        print(f"{label}: {results[part]}", flush=True)
    results["load_average_after"] = load_average()
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    RESULTS.mkdir(exist_ok=True)
    name = f"steps_bench_{args.tag}.json" if args.tag else "steps_bench.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2))
    for line in ratios(results):
        print(f"RESULT {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
