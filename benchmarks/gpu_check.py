"""The GPU check (run by gpu_check.sh): trains and merges on the GPU, prints RESULT lines.

Train: `langmerge-train` on a randomly initialised model with Llama-3.2-1B shapes, bf16,
LoRA r=16 on q,k,v,o: tokens/s, peak GPU memory and MFU (4 x parameters FLOPs per token:
forward plus the backward pass through frozen weights, which LoRA still needs).
Merge: KnOTS-TIES over Llama-3.1-8B-shaped adapters (32 layers, r=16, five languages) and
TIES over two layers, with --device cuda, against the same merges on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_bench import run_method, write_adapters

RESULTS = Path(__file__).resolve().parent / "results"


# Dense bf16 peak per GPU (TFLOP/s), from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


LLAMA_3_2_1B = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rope_theta": 500000.0,
}


def train_on_gpu(root: Path) -> dict[str, float]:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from langmerge.common import builtin

    config = LlamaConfig(**LLAMA_3_2_1B)
    model_dir = root / "llama-3.2-1b-shaped"
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(model_dir, safe_serialization=True)
    del model
    AutoTokenizer.from_pretrained(builtin.path()).save_pretrained(model_dir)
    lines = [
        line for text in builtin.corpus().values() for line in text.splitlines() if line.strip()
    ]
    data = root / "text.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": line}, ensure_ascii=False) for line in lines * 200)
    )
    summary = root / "train.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "langmerge.trainer.cli",
            "--base-model",
            str(model_dir),
            "--task",
            "gpu-check",
            "--dataset",
            str(data),
            "--text-field",
            "text",
            "--packing",
            "--max-seq-length",
            "1024",
            "--batch-size",
            "8",
            "--max-steps",
            "60",
            "--precision",
            "bf16",
            "--lora-rank",
            "16",
            "--output",
            str(root / "adapter"),
            "--summary-file",
            str(summary),
            "--log-every",
            "20",
        ],
        check=True,
    )
    result = json.loads(summary.read_text())
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = 4 * parameters * result["tokensPerSecond"] / 1e12
    return {
        "parameters": parameters,
        "tokens_per_second": result["tokensPerSecond"],
        "peak_gpu_memory_gb": result["peakMemoryBytes"] / 1e9,
        "achieved_tflops": achieved,
        "mfu": achieved / peak if peak else float("nan"),
        "seconds": result["trainSeconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "gpu_check.json",
        help="where the figures are written",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible", file=sys.stderr)
        return 1
    results: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp)
        training = train_on_gpu(root)
        results["train_llama_3_2_1b_shaped"] = training
        print(f"train: {training}", flush=True)
        full = write_adapters(root, 32)
        dense = write_adapters(root, 2)
        for method, adapters in (("knots-ties", full), ("ties", dense)):
            for device in ("cuda", "cpu"):
                figures = run_method(method, adapters, root / f"{method}-{device}", device)
                results[f"merge_{method}_{device}"] = figures
                print(f"merge {method:10s} {device}: {figures}", flush=True)
    results["load_average_after"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"RESULT {key}_seconds={value.get('merge_s', value.get('seconds'))}")
    print(f"RESULT train_tokens_per_second={training['tokens_per_second']:.0f}")
    print(f"RESULT train_peak_gpu_memory_gb={training['peak_gpu_memory_gb']:.2f}")
    print(f"RESULT train_mfu={training['mfu']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
