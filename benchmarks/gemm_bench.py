"""How fast this CPU multiplies matrices in bf16 and in fp32, at the shapes of a Gemma 3 270M
training step: what bounds the trainer's bf16 speed-up over fp32 on a given machine (CPUs of
one kind of VM differ: a Zen 4 and a Zen 5 with the same flags read very differently).

Shapes (rows x inner x columns): a step's MLP products (200 tokens, hidden 640, MLP 2048), the
output layer's blocks at a step's response positions (16 x 640 x 4096, both ways), and one
large product. Each is timed over `--repeats` rounds of 50 products after 5 warm-up ones;
prints the median microseconds and GFLOPS and the bf16 / fp32 ratio.

    python benchmarks/gemm_bench.py [--repeats 5] [--tag TAG]

Ends with RESULT name=value lines and writes benchmarks/results/gemm_bench[_TAG].json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

SHAPES = [(200, 640, 2048), (200, 2048, 640), (16, 640, 4096), (16, 4096, 640), (2048, 640, 2048)]
PRODUCTS = 50


def seconds_per_product(rows: int, inner: int, columns: int, dtype: object) -> float:
    import torch

    a = torch.randn(rows, inner).to(dtype)
    b = torch.randn(inner, columns).to(dtype)
    for _ in range(5):
        torch.mm(a, b)
    started = time.perf_counter()
    for _ in range(PRODUCTS):
        torch.mm(a, b)
    return (time.perf_counter() - started) / PRODUCTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    import torch

    load_before = os.getloadavg()
    results: dict[str, object] = {"threads": torch.get_num_threads(), "shapes": {}}
    for rows, inner, columns in SHAPES:
        name = f"{rows}x{inner}x{columns}"
        flops = 2 * rows * inner * columns
        medians = {}
        for label, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            runs = [seconds_per_product(rows, inner, columns, dtype) for _ in range(args.repeats)]
            medians[label] = statistics.median(runs)
        ratio = medians["fp32"] / medians["bf16"]
        results["shapes"][name] = {  # type: ignore[index]
            label: {"microseconds": round(s * 1e6, 1), "gflops": round(flops / s / 1e9, 1)}
            for label, s in medians.items()
        } | {"bf16_speedup": round(ratio, 2)}
        bf16, fp32 = medians["bf16"], medians["fp32"]
        print(
            f"{name:>16}: bf16 {bf16 * 1e6:8.0f} us ({flops / bf16 / 1e9:4.0f} GFLOPS), "
            f"fp32 {fp32 * 1e6:8.0f} us ({flops / fp32 / 1e9:4.0f} GFLOPS), bf16 {ratio:.2f}x"
        )
        print(f"RESULT gemm_{name}_bf16_speedup={ratio:.2f}")
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()
    print(f"load average before {load_before}, after {results['load_average_after']}")
    target = (
        Path(__file__).resolve().parent
        / "results"
        / (f"gemm_bench{'_' + args.tag if args.tag else ''}.json")
    )
    target.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
