"""The GPU check (run by gpu_check.sh): merges on the GPU, and prints RESULT lines.

Merge: KnOTS-TIES over Llama-3.1-8B-shaped adapters (32 layers, r=16, five languages) and
TIES over two layers, with --device cuda, against the same merges on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_bench import write_adapters

RESULTS = Path(__file__).resolve().parent / "results"


def merge_on(device: str, method: str, adapters: list[Path], out: Path) -> dict[str, float]:
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
        "--device",
        device,
    ]
    for path in adapters:
        args += ["--adapter", str(path)]
    subprocess.run(args, check=True)
    data = json.loads(summary.read_text())
    return {"seconds": data["wallSeconds"], "peak_rss_gb": data["peakRssBytes"] / 1e9}


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device visible", file=sys.stderr)
        return 1
    results: dict[str, object] = {"gpu": torch.cuda.get_device_name(0)}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp)
        full = write_adapters(root, 32)
        dense = write_adapters(root, 2)
        for method, adapters in (("knots-ties", full), ("ties", dense)):
            for device in ("cuda", "cpu"):
                figures = merge_on(device, method, adapters, root / f"{method}-{device}")
                results[f"merge_{method}_{device}"] = figures
                print(f"merge {method:10s} {device}: {figures}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_check.json").write_text(json.dumps(results, indent=2))
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"RESULT {key}_seconds={value['seconds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
