"""The trainer's step against the same step without one of its parts, in one process.

Each side is its own model (the trainer's, lora_model) and optimizer, trained on the same
batches (train_bench.py's rows, batches of 8, seeded); the sides take turns step by step, the
side that goes first rotating, so that a slow spell of the machine falls on every side alike.
Sides:

- `trainer`: the step as the trainer takes it;
- `own-norms`: the model's own RMS norms (autograd's backward of them; the trainer replaces
  Gemma 3's by langmerge.trainer.norms);
- `loop-adamw`: AdamW's loop over the LoRA tensors (torch's default on a CPU) instead of the
  fused kernel;
- `before`: both of the above (the trainer before them).

Prints each side's median step seconds and tokens/s (from the third step on), and the
trainer's speed-up against each side: the median over the steps of the side's seconds over the
trainer's on the same batch.

    python benchmarks/train_step_ab.py [--model builtin:gemma-3-270m] [--precision bf16]
        [--steps 40] [--tag TAG]

Ends with RESULT name=value lines and writes benchmarks/results/train_step_ab[_TAG].json."""

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
from train_bench import LORA, TARGETS, records, step_batches

BATCH = 8
SIDES = ("trainer", "own-norms", "loop-adamw", "before")


def side_model(side: str, folder: Path, precision: str) -> tuple[Any, Any]:
    import torch

    from langmerge.trainer import norms
    from langmerge.trainer.train import TrainConfig, lora_model

    config = TrainConfig(
        rank=LORA["rank"], alpha=LORA["alpha"], dropout=0.0, target_modules=TARGETS
    )
    install = norms.install
    if side in ("own-norms", "before"):
        norms.install = lambda model: 0  # lora_model keeps the model's own norms
    try:
        torch.manual_seed(0)  # the same LoRA factors on every side
        model = lora_model(folder, config, precision)
    finally:
        norms.install = install
    trained = [p for p in model.parameters() if p.requires_grad]
    fused = side not in ("loop-adamw", "before")
    return model, torch.optim.AdamW(trained, lr=2e-4, fused=fused)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="builtin:gemma-3-270m")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from langmerge.common import models
    from langmerge.common.logits import response_loss

    folder = models.resolve(args.model, Path(tempfile.gettempdir()))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sides = {side: side_model(side, folder, args.precision) for side in SIDES}
    batches = [
        (b["input_ids"], b["attention_mask"], b["labels"])
        for b in step_batches(tokenizer, records(args.steps * BATCH), BATCH)
    ]

    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    tokens: list[int] = []
    for step, (ids, mask, labels) in enumerate(batches):
        turn = SIDES[step % len(SIDES) :] + SIDES[: step % len(SIDES)]
        for side in turn:
            model, optimizer = sides[side]
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = response_loss(model, ids, mask, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            seconds[side].append(time.perf_counter() - started)
        tokens.append(int(mask.sum()))
    steady_tokens = sum(tokens[2:])
    results: dict[str, Any] = {
        "model": args.model,
        "precision": args.precision,
        "steps": args.steps,
        "loadAverage": os.getloadavg()[0],
        "sides": {},
    }
    trainer = seconds["trainer"][2:]
    for side in SIDES:
        own = seconds[side][2:]
        # the same batch on both sides: the median of the steps' ratios
        speedup = statistics.median(o / t for o, t in zip(own, trainer, strict=True))
        results["sides"][side] = {
            "medianStepSeconds": round(statistics.median(own), 4),
            "tokensPerSecond": round(steady_tokens / sum(own), 1),
            "trainerSpeedup": round(speedup, 3),
        }
        print(
            f"{side:>10}: {statistics.median(own) * 1e3:7.1f} ms a step (median), "
            f"{steady_tokens / sum(own):6.1f} tokens/s, trainer {speedup:.3f}x"
        )
    for side in SIDES:
        key = side.replace("-", "_")
        print(f"RESULT {key}_step_seconds={results['sides'][side]['medianStepSeconds']}")
        print(f"RESULT trainer_vs_{key}={results['sides'][side]['trainerSpeedup']}")
    name = f"train_step_ab{'_' + args.tag if args.tag else ''}.json"
    (Path(__file__).resolve().parent / "results" / name).write_text(
        json.dumps(results, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
