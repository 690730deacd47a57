"""What bf16 costs on this CPU, and what the trainer's fallback saves.

On a CPU without oneDNN's bfloat16 kernels (AVX2, no AVX-512 or AMX) torch multiplies bf16
matrices in a scalar fallback, so langmerge trains a bf16-asking adapter in fp32 there
(langmerge.common.precision). Each configuration trains the same LoRA on the same rows in a
process of its own, interleaved, `repeats` times:

- `fp32`: `--precision fp32`;
- `bf16_asked`: `--precision bf16`, as a LanguageAdapter asks by default (fp32 where this
  CPU has no bf16 kernels);
- `bf16_forced`: `--precision bf16` with LANGMERGE_CPU_BF16=force (bf16 whatever the CPU).

Prints tokens/s medians, the precision each computed in and the ratios against fp32.

    python benchmarks/cpu_bf16_bench.py [--models builtin:gemma-3-270m] [--steps 2] [--repeats 3]

Ends with RESULT lines and writes benchmarks/results/cpu_bf16_bench.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import RESULTS, langmerge_run, records

CONFIGURATIONS = {  # name: (precision, environment)
    "fp32": ("fp32", {}),
    "bf16_asked": ("bf16", {}),
    "bf16_forced": ("bf16", {"LANGMERGE_CPU_BF16": "force"}),
}


def cpu() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = info.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    from langmerge.common.precision import cpu_has_bf16_kernels

    return {
        "model": names[0] if names else platform.processor(),
        "bf16Flags": sorted(f for f in flags if "bf16" in f or f in ("avx512bw", "avx2")),
        "bf16Kernels": cpu_has_bf16_kernels(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="builtin:gemma-3-270m", help="comma-separated")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    args = parser.parse_args()
    from langmerge.common import models as base_models

    batch = 8
    results: dict[str, Any] = {"cpu": cpu(), "loadBefore": os.getloadavg(), "models": {}}
    print(f"cpu: {results['cpu']}")
    with tempfile.TemporaryDirectory(prefix="cpu-bf16-bench-") as tmp:
        for name in args.models.split(","):
            base_models.resolve(name, Path(tmp))  # built or converted outside the timed runs
            data = Path(tmp) / "data.jsonl"
            rows = records(args.steps * batch)
            data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
            runs: dict[str, list[dict[str, Any]]] = {key: [] for key in CONFIGURATIONS}
            for repeat in range(args.repeats):  # interleaved: a busy spell hits every one
                for key, (precision, env) in CONFIGURATIONS.items():
                    out = Path(tmp) / f"{key}-{repeat}"
                    figures = langmerge_run(
                        name, data, out, args.steps, batch, precision, "response", env
                    )
                    figures["precision"] = json.loads(out.with_suffix(".json").read_text())[
                        "precision"
                    ]
                    runs[key].append(figures)
                    print(f"{name} {key} run {repeat + 1}: {figures}", flush=True)
            speed = {
                k: statistics.median(r["tokens_per_second"] for r in v) for k, v in runs.items()
            }
            results["models"][name] = {
                "steps": args.steps,
                "batch": batch,
                "runs": runs,
                "tokensPerSecond": speed,
                "computedIn": {k: sorted({r["precision"] for r in v}) for k, v in runs.items()},
                "ratios": {
                    "bf16_forced_vs_fp32": speed["bf16_forced"] / speed["fp32"],
                    "bf16_asked_vs_fp32": speed["bf16_asked"] / speed["fp32"],
                },
            }
            short = name.removeprefix("builtin:").replace("-", "_").replace(".", "_")
            for key, value in speed.items():
                print(f"RESULT {short}_{key}_tokens_per_second={value:.2f}")
            for key, value in results["models"][name]["ratios"].items():
                print(f"RESULT {short}_{key}={value:.3f}")
    results["loadAfter"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_bf16_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
