"""The trainer's short-row attention (trainer/attention.py) against SDPA on Gemma 3 270M: the
speed of a LoRA training step and the accuracy of its gradients.

Speed: both trainers (`--attention sdpa` and `auto`, the same LoRA, seed and optimizer) in
one process, stepping through the same batches in turn, the side that goes first alternating
by round; per row set, each round's SDPA seconds over the short-row seconds, and their median.
Row sets: the train_bench rows (quickstart reviews, about 20 tokens), the research's German
sentiment and reasoning training rows; bf16, and the bench rows in fp32 too (where `auto`
keeps SDPA, so the ratio reads 1 up to noise).

Accuracy: one batch of the bench rows, the LoRA B factors set to the same random values so
that every gradient is non-zero; the relative distance of the bf16 LoRA gradients, with
SDPA and with the short-row attention, to float32 SDPA's.

    python benchmarks/attention_bench.py [--rounds 3] [--tag TAG]

Writes benchmarks/results/attention_bench[_TAG].json."""

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
from train_bench import FORCED_BF16, LORA, RESULTS, TARGETS, records, step_batches

RESEARCH = Path(__file__).resolve().parents[1] / "examples" / "research" / "datasets"
BATCH, ROWS = 8, 64


def _rows(name: str) -> list[dict[str, str]]:
    if name == "bench":
        return records(ROWS)
    lines = (RESEARCH / name / "de-train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:ROWS]]


def _trainer(model_dir: Path, precision: str, attention: str) -> tuple[Any, Any]:
    import torch

    from langmerge.trainer import train

    config = train.TrainConfig(
        **LORA, target_modules=TARGETS, precision=precision, attention=attention
    )
    torch.manual_seed(0)
    model = train.lora_model(model_dir, config, precision)
    loss = train.CausalLoss(model, True)
    loss.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    return loss, torch.optim.AdamW(trained, lr=2e-4)


def _batches(model_dir: Path, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    from transformers import AutoTokenizer

    return step_batches(AutoTokenizer.from_pretrained(model_dir), rows, BATCH)


def _step(side: tuple[Any, Any], batch: dict[str, Any], precision: str) -> float:
    import torch

    loss_of, optimizer = side
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = loss_of(**batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def speed(model_dir: Path, rows: str, precision: str, rounds: int) -> dict[str, Any]:
    batches = _batches(model_dir, _rows(rows))
    sides = {a: _trainer(model_dir, precision, a) for a in ("sdpa", "auto")}
    for side in sides.values():  # warm-up
        _step(side, batches[0], precision)
    ratios, tokens = [], sum(int(b["attention_mask"].sum()) for b in batches)
    for turn in range(rounds):
        seconds = {a: 0.0 for a in sides}
        for batch in batches:
            for attention in ("sdpa", "auto") if turn % 2 == 0 else ("auto", "sdpa"):
                seconds[attention] += _step(sides[attention], batch, precision)
        ratios.append(seconds["sdpa"] / seconds["auto"])
        print(
            f"{rows} {precision} round {turn + 1}: sdpa {tokens / seconds['sdpa']:.0f} tokens/s, "
            f"short rows {tokens / seconds['auto']:.0f} tokens/s, {ratios[-1]:.3f}x",
            flush=True,
        )
    return {"ratios": ratios, "median": statistics.median(ratios), "tokens": tokens}


def gradient_distances(model_dir: Path) -> dict[str, float]:
    import torch

    batch = _batches(model_dir, _rows("bench")[:BATCH])[0]
    gradients = {}
    for precision, attention in (("fp32", "sdpa"), ("bf16", "sdpa"), ("bf16", "auto")):
        loss_of, _ = _trainer(model_dir, precision, attention)
        for module in loss_of.modules():
            if hasattr(module, "lora_B"):
                torch.manual_seed(1)
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss_of(**batch).backward()
        gradients[precision, attention] = torch.cat(
            [p.grad.flatten() for p in loss_of.parameters() if p.grad is not None]
        )
    exact = gradients["fp32", "sdpa"]
    return {
        f"bf16_{a}": float((gradients["bf16", a] - exact).norm() / exact.norm())
        for a in ("sdpa", "auto")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    os.environ.update(FORCED_BF16)  # bf16 as bf16 on every CPU, as train_bench measures it
    from langmerge.common import models

    model_dir = models.resolve(models.GEMMA, Path(tempfile.mkdtemp()))
    result: dict[str, Any] = {"loadAverageBefore": os.getloadavg(), "speed": {}}
    for rows, precision in (
        ("bench", "bf16"),
        ("sentiment", "bf16"),
        ("reasoning", "bf16"),
        ("bench", "fp32"),
    ):
        result["speed"][f"{rows}_{precision}"] = speed(model_dir, rows, precision, args.rounds)
    result["gradientDistanceToFp32"] = gradient_distances(model_dir)
    result["loadAverageAfter"] = os.getloadavg()
    for name, figures in result["speed"].items():
        print(f"RESULT short_rows_speedup_{name}={figures['median']:.3f}")
    for name, distance in result["gradientDistanceToFp32"].items():
        print(f"RESULT gradient_distance_{name}={distance:.4f}")
    out = RESULTS / f"attention_bench{'_' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average {result['loadAverageBefore']} -> {result['loadAverageAfter']}; {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
