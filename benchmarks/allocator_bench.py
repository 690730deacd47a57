"""glibc's allocator settings against the merge search, each in a process of its own.

One merge and the search of 8 (benchmarks/search_bench.py's two sides, on its 8B-shaped
adapters) under glibc's defaults, a pinned mmap threshold (64 MiB), and that with a trim
threshold of 1 GiB besides, interleaved --repeat times: whether pinning the allocator pays
for the search's ratio to one merge.

Usage: python benchmarks/allocator_bench.py [--repeat N] [--layers N]
Ends with RESULT name=value lines and writes benchmarks/results/allocator_bench.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS: dict[str, dict[str, str]] = {
    "glibc_defaults": {},
    "mmap_threshold_64mib": {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)},
    "mmap_64mib_trim_1gib": {
        "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    },
}


def _search_bench() -> Any:
    spec = importlib.util.spec_from_file_location("search_bench", HERE / "search_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def side(name: str, adapters: list[Path], env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"allocator-bench-{name}-") as scratch:
        args = [sys.executable, str(HERE / "search_bench.py"), "--side", name]
        args += ["--scratch", scratch, *(a for p in adapters for a in ("--adapter", str(p)))]
        done = subprocess.run(
            args, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--layers", type=int, default=32, help="layers of the 8B-shaped set")
    args = parser.parse_args()
    bench = _search_bench()
    results: dict[str, Any] = {"layers": args.layers, "runs": args.repeat}
    results["load_average_before"] = bench.load_average()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        v: {"one": [], "search": []} for v in VARIANTS
    }
    with tempfile.TemporaryDirectory(prefix="allocator-bench-adapters-") as root:
        adapters = bench._merge_bench().write_adapters(Path(root), args.layers)
        for _ in range(args.repeat):  # interleaved: a drift of the load hits every variant
            for variant, env in VARIANTS.items():
                for name, measured in runs[variant].items():
                    measured.append(side(name, adapters, env))
    for variant, sides in runs.items():
        figures: dict[str, Any] = {}
        for name, values in sides.items():
            seconds = [v["seconds"] for v in values]
            figures[f"{name}_seconds"] = statistics.median(seconds)
            figures[f"{name}_seconds_range"] = [min(seconds), max(seconds)]
            figures[f"{name}_peak_rss_gb"] = statistics.median(v["peak_rss_gb"] for v in values)
        figures["search_vs_one"] = figures["search_seconds"] / figures["one_seconds"]
        results[variant] = figures
    results["load_average_after"] = bench.load_average()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "allocator_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    for variant in VARIANTS:
        f = results[variant]
        print(
            f"{variant:22s} one {f['one_seconds']:.1f} s {f['one_seconds_range']}, "
            f"search {f['search_seconds']:.1f} s {f['search_seconds_range']}"
        )
        print(f"RESULT {variant}_search_vs_one={f['search_vs_one']:.2f}")
    print(f"load average {results['load_average_before']} -> {results['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
