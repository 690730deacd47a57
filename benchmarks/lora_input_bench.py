"""What keeping the LoRA layers' inputs in bf16 saves the trainer's bf16 step.

Under autocast with a bf16 base, peft copies each LoRA layer's input to float32 (its weights'
dtype) and autocast copies it back to bf16 for the matmul; the trainer turns peft's copy off
where dropout is 0 (`langmerge.trainer.train.keep_lora_inputs_in_bf16`). Each side trains
the same LoRA (r16 on every linear layer, no dropout) on the same rows as
benchmarks/train_bench.py, in a process of its own, interleaved, `repeats` times:

- `peft_copy`: the trainer with that step left out (the trainer before it);
- `bf16_inputs`: the trainer as shipped.

Prints tokens/s medians and their ratio, and checks the two sides wrote the same adapter,
byte for byte.

    python benchmarks/lora_input_bench.py [--model builtin:gemma-3-270m] [--steps 8] [--repeats 3]

Ends with RESULT lines and writes benchmarks/results/lora_input_bench.json."""

from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import LEARNING_RATE, LORA, RESULTS, TARGETS, records

SIDES = ("peft_copy", "bf16_inputs")
BATCH = 8


def child(side: str, argv: list[str]) -> None:
    """The trainer's command line, in this process, with the step left out for peft_copy."""
    from langmerge.trainer import train

    if side == "peft_copy":
        train.keep_lora_inputs_in_bf16 = lambda model, dropout: False  # type: ignore[assignment]
    sys.argv = ["langmerge-train", *argv]
    runpy.run_module("langmerge.trainer.cli", run_name="__main__")


def run(side: str, model: str, data: Path, out: Path, steps: int) -> dict[str, Any]:
    summary = out.with_suffix(".json")
    subprocess.run(
        [
            sys.executable, __file__, "--child", side, "--base-model", model, "--task", "bench",
            "--dataset", str(data), "--batch-size", str(BATCH), "--max-steps", str(steps),
            "--learning-rate", str(LEARNING_RATE), "--lora-rank", str(LORA["rank"]),
            "--lora-alpha", str(LORA["alpha"]), "--lora-dropout", str(LORA["dropout"]),
            "--target-modules", ",".join(TARGETS), "--precision", "bf16", "--logits", "response",
            "--output", str(out), "--summary-file", str(summary), "--log-every", str(steps),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "LANGMERGE_CPU_BF16": "force"},  # bf16 on any CPU, as train_bench
    )  # fmt: skip
    figures = json.loads(summary.read_text())
    adapter = (out / "adapter_model.safetensors").read_bytes()
    return {"tokens_per_second": figures["tokensPerSecond"], "adapter": adapter}


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="builtin:gemma-3-270m")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side")
    args = parser.parse_args()
    from langmerge.common import models as base_models

    results: dict[str, Any] = {"model": args.model, "steps": args.steps, "batch": BATCH}
    results["loadBefore"] = os.getloadavg()
    speeds: dict[str, list[float]] = {side: [] for side in SIDES}
    same_adapter = True
    with tempfile.TemporaryDirectory(prefix="lora-input-bench-") as tmp:
        base_models.resolve(args.model, Path(tmp))  # converted outside the timed runs
        data = Path(tmp) / "data.jsonl"
        rows = records(args.steps * BATCH)
        data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
        for repeat in range(args.repeats):  # interleaved: a busy spell hits both sides
            adapters = {}
            for side in SIDES:
                done = run(side, args.model, data, Path(tmp) / f"{side}-{repeat}", args.steps)
                speeds[side].append(done["tokens_per_second"])
                adapters[side] = done["adapter"]
                print(f"{side} run {repeat + 1}: {done['tokens_per_second']} tokens/s", flush=True)
            same_adapter &= adapters["peft_copy"] == adapters["bf16_inputs"]
    medians = {side: statistics.median(values) for side, values in speeds.items()}
    ratio = medians["bf16_inputs"] / medians["peft_copy"]
    results.update(
        runs=speeds, medians=medians, ratio=ratio, sameAdapter=same_adapter,
        loadAfter=os.getloadavg(),
    )  # fmt: skip
    for side, value in medians.items():
        print(f"RESULT {side}_tokens_per_second={value:.1f}")
    print(f"RESULT bf16_inputs_vs_peft_copy={ratio:.3f}")
    print(f"RESULT same_adapter={same_adapter}")
    print(f"load average before {results['loadBefore']}, after {results['loadAfter']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lora_input_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if same_adapter else 1


if __name__ == "__main__":
    raise SystemExit(main())
