"""Alternatives for the trainer's step, each timed step by step in this process: what the
README's "tried and dropped" figures for the trainer come from.

The step is the trainer's (a bf16 base under autocast, or fp32; LoRA r16 on every linear
layer, no dropout; the response-only loss; AdamW), on train_bench.py's rows, batches of 8,
seeded. --variant picks what changes:

- `trainer`: the step as the trainer takes it (LoRA inputs kept in bf16, Gemma's norms with
  their closed-form backward, fused AdamW);
- `own-norms`: the model's own RMS norms (autograd's backward of them);
- `loop-adamw`: AdamW's loop over the LoRA tensors (torch's default on a CPU);
- `compile`: the loss under `torch.compile(dynamic=True)` (its first step compiles);
- `eager`: transformers' eager attention instead of SDPA;
- `threads=N`: N intra-op threads (run two such processes side by side to read the
  throughput of one training per core).

Prints each step's seconds and loss, then the tokens/s from the third step on ("steady")
and over every step.

    python benchmarks/train_step_probe.py [--model builtin:gemma-3-270m] [--precision bf16]
        [--steps 16] [--variant trainer|own-norms|loop-adamw|compile|eager|threads=N]"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import LORA, TARGETS, records, step_batches

BATCH = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="builtin:gemma-3-270m")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--variant", default="trainer")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from langmerge.common import models
    from langmerge.common.logits import response_loss
    from langmerge.trainer import norms
    from langmerge.trainer.train import TrainConfig, lora_model

    variants = ("trainer", "own-norms", "loop-adamw", "compile", "eager")
    if args.variant.startswith("threads="):
        torch.set_num_threads(int(args.variant.split("=", 1)[1]))
    elif args.variant not in variants:
        parser.error(f"--variant {args.variant!r}: give {', '.join(variants)} or threads=N")
    if args.variant == "own-norms":
        norms.install = lambda model: 0  # lora_model then keeps the model's own norms
    folder = models.resolve(args.model, Path(tempfile.gettempdir()))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    config = TrainConfig(
        rank=LORA["rank"], alpha=LORA["alpha"], dropout=0.0, target_modules=TARGETS
    )
    model = lora_model(folder, config, args.precision)
    if args.variant == "eager":
        model.get_base_model().config._attn_implementation = "eager"
    loss_of = (
        torch.compile(response_loss, dynamic=True) if args.variant == "compile" else response_loss
    )
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=2e-4, fused=args.variant != "loop-adamw")
    timed = []
    for step, batch in enumerate(step_batches(tokenizer, records(args.steps * BATCH), BATCH)):
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = loss_of(model, ids, mask, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds = time.perf_counter() - started
        timed.append((seconds, int(mask.sum())))
        print(f"step {step}: {seconds:.3f} s, loss {float(loss):.4f}", flush=True)
    steady = timed[2:] or timed
    name = args.variant.replace("=", "").replace("-", "_")  # RESULT keys are name=value
    print(
        f"RESULT {name}_steady_tokens_per_second="
        f"{sum(n for _, n in steady) / sum(s for s, _ in steady):.1f}"
    )
    print(
        f"RESULT {name}_tokens_per_second={sum(n for _, n in timed) / sum(s for s, _ in timed):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
