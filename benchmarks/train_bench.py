"""Training throughput and memory of builtin:tiny on this machine's CPU.

Runs `langmerge-train` (LoRA) and, as the baseline in the same run, a full-parameter
fine-tune of the same model on the same data and steps; prints tokens/s, peak RSS and the
ratios. Usage: python benchmarks/train_bench.py [--quick]
Ends with RESULT name=value lines and writes benchmarks/results/train_bench.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langmerge.common import builtin
from langmerge.common.summary import peak_rss_bytes

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = [line for text in builtin.corpus().values() for line in text.splitlines() if line.strip()]


def lora_run(data: Path, out: Path, steps: int, batch: int, length: int) -> dict[str, float]:
    summary = out.with_suffix(".json")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "langmerge.trainer.cli",
            "--base-model",
            "builtin:tiny",
            "--task",
            "bench",
            "--dataset",
            str(data),
            "--text-field",
            "text",
            "--packing",
            "--max-seq-length",
            str(length),
            "--batch-size",
            str(batch),
            "--max-steps",
            str(steps),
            "--output",
            str(out),
            "--summary-file",
            str(summary),
            "--log-every",
            str(steps),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    s = json.loads(summary.read_text())
    return {
        "tokens_per_second": s["tokensPerSecond"],
        "peak_rss_gb": s["peakMemoryBytes"] / 1e9,
        "wall_s": s["wallSeconds"],
    }


def full_finetune(steps: int, batch: int, length: int) -> dict[str, float]:
    """The baseline: every parameter trained, same data stream, in a child of this script."""
    tokenizer = AutoTokenizer.from_pretrained(builtin.path())
    model = AutoModelForCausalLM.from_pretrained(builtin.path(), dtype=torch.float32)
    ids = torch.tensor([t for line in TEXT for t in tokenizer(line)["input_ids"]] * 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    model.train()
    tokens, started = 0, time.monotonic()
    for step in range(steps):
        start = (step * batch * length) % max(1, len(ids) - batch * length)
        chunk = ids[start : start + batch * length].view(batch, length)
        model(input_ids=chunk, labels=chunk).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += chunk.numel()
    wall = time.monotonic() - started
    return {
        "tokens_per_second": tokens / wall,
        "peak_rss_gb": peak_rss_bytes() / 1e9,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps, batch, length = (20, 8, 128) if args.quick else (100, 8, 256)
    if args.baseline_only:
        print(json.dumps(full_finetune(steps, batch, length)))
        return 0
    builtin.path()  # build outside the timed runs
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        data = Path(tmp) / "text.jsonl"
        data.write_text(
            "\n".join(json.dumps({"text": line}, ensure_ascii=False) for line in TEXT * 4)
        )
        lora = lora_run(data, Path(tmp) / "adapter", steps, batch, length)
    baseline_cmd = [sys.executable, __file__, "--baseline-only"] + (
        ["--quick"] if args.quick else []
    )
    full = json.loads(
        subprocess.run(baseline_cmd, check=True, capture_output=True, text=True).stdout
    )
    results = {
        "mode": "quick" if args.quick else "full",
        "steps": steps,
        "batch": batch,
        "sequence_length": length,
        "lora": lora,
        "full_finetune_baseline": full,
        "threads": torch.get_num_threads(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("train_bench_quick.json" if args.quick else "train_bench.json")).write_text(
        json.dumps(results, indent=2)
    )
    print(json.dumps(results, indent=2))
    print(f"RESULT lora_tokens_per_second={lora['tokens_per_second']:.0f}")
    print(f"RESULT lora_peak_rss_gb={lora['peak_rss_gb']:.3f}")
    print(f"RESULT full_finetune_tokens_per_second={full['tokens_per_second']:.0f}")
    ratio = lora["tokens_per_second"] / full["tokens_per_second"]
    print(f"RESULT lora_vs_full_throughput_ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
